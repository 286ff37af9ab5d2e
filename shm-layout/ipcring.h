/*
 * ipcring.h: the shared-memory layout of an ipcring segment, version 2, for C peers.
 *
 * This header mirrors src/layout.rs byte for byte; shm-layout/LAYOUT.md is the normative
 * specification (validation, memory ordering, role claims, endpoint records, the MPMC sequence
 * protocol and crash recovery, wakeups). tests/c_layout.rs compiles this header and compares
 * every size, offset and constant with the Rust definitions.
 *
 * All integers are little-endian and fixed-width; there are no pointers. Shared words (the magic,
 * positions, wait words, claim words, endpoint records, slot stamps and sequences, counters) must
 * be accessed atomically: use the __atomic builtins (GCC, Clang) with the orderings LAYOUT.md
 * names, as the helpers at the end do.
 *
 * Liveness (LAYOUT.md section 10): every attached process proves that it is alive with
 * open-file-description (OFD) byte-range locks on the ring's file, in the lock map at
 * header.lock_map_offset (past the end of the file: locking there allocates nothing). It opens
 * the file again for a description of its own (never one it shares or exposes), holds a shared
 * lock on byte IPCRING_LOCK_OPEN while it has the segment mapped, and an exclusive lock on byte
 * IPCRING_LOCK_RECORDS + i for each record i it holds (SPSC: IPCRING_ROLE_PRODUCER,
 * IPCRING_ROLE_CONSUMER; MPMC: endpoint record i). The kernel drops them when the process exits
 * or is killed, so a free record lock means "no live holder", whatever the claim word says; the
 * claim word only names the holder (information). There is no pid or /proc check any more.
 * The lock helpers at the end exist only when <fcntl.h> was included first with _GNU_SOURCE
 * defined (F_OFD_SETLK is a Linux extension); a peer that takes no locks must not attach.
 *
 * C11 (or C++11). Requires <stdint.h> and <stddef.h> only (the lock helpers also include
 * <errno.h>, <stdio.h>, <string.h>, <sys/stat.h> and <unistd.h>). Include <semaphore.h> first to
 * have the size of the platform's sem_t checked against the semaphore field of the wait block.
 */
#ifndef IPCRING_H
#define IPCRING_H

#include <stddef.h>
#include <stdint.h>

#ifdef F_OFD_SETLK /* <fcntl.h> with _GNU_SOURCE came first: the lock helpers are available */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif
#ifdef __linux__ /* SYS_membarrier, for the membarrier strategy's helpers */
#include <sys/syscall.h>
#endif

#ifdef __cplusplus
extern "C" {
#define IPCRING_STATIC_ASSERT static_assert
#else
#define IPCRING_STATIC_ASSERT _Static_assert
#endif

/* ---- Constants --------------------------------------------------------------------------- */

/* First eight bytes of every segment: "IPCRING\0" read as a little-endian u64. */
#define IPCRING_MAGIC 0x00474E4952435049ULL
/* The layout version described here; a peer attaches to this version only. */
#define IPCRING_LAYOUT_VERSION 2u
/* The oldest version a read-only inspector may still read (version 1 has no lock map, and its
 * liveness rule, by pid, is gone: never attach to it). */
#define IPCRING_OLDEST_READABLE_VERSION 1u
/* Size of every control block; each hot word sits alone in one (no false sharing). */
#define IPCRING_BLOCK_SIZE 128u
/* Size of struct ipcring_header (two blocks). */
#define IPCRING_HEADER_SIZE 256u
/* Bytes of struct ipcring_slot_header at the start of every SPSC slot. */
#define IPCRING_SLOT_HEADER_SIZE 8u
/* Bytes of struct ipcring_mpmc_slot_header at the start of every MPMC slot. */
#define IPCRING_MPMC_SLOT_HEADER_SIZE 16u
/* Alignment of every slot, slot stride and payload offset. */
#define IPCRING_SLOT_ALIGN 8u
/* Largest payload of one slot (1 GiB). */
#define IPCRING_MAX_SLOT_SIZE (1u << 30)
/* Largest slot count (2^24). */
#define IPCRING_MAX_SLOT_COUNT (1ULL << 24)
/* Positions at or above this are impossible (2^63 messages); refusing them keeps every
 * position + count below overflow. */
#define IPCRING_MAX_POSITION (1ULL << 63)
/* Largest segment (64 GiB). */
#define IPCRING_MAX_SEGMENT_SIZE (64ULL << 30)
/* incompatible_features bit: peers prove they are alive with OFD locks in the lock map (LAYOUT.md
 * section 10). Set in every version-2 segment; a reader that takes no such locks must refuse the
 * segment (its peers would take it for dead and take its role over). */
#define IPCRING_INCOMPAT_OFD_LOCKS 1u
/* incompatible_features bit: subscribers_offset, subscriber_count and overflow are meaningful (a
 * broadcast ring: set in every one, refused with another kind; docs/design-broadcast.md) */
#define IPCRING_INCOMPAT_SUBSCRIBER_TABLE 2u
/* Incompatible feature bits this header describes: refuse a segment with any other bit set. */
#define IPCRING_KNOWN_INCOMPATIBLE_FEATURES (IPCRING_INCOMPAT_OFD_LOCKS | IPCRING_INCOMPAT_SUBSCRIBER_TABLE)
/* compatible_features bit: the stats blocks record last_active_ns (LAYOUT.md section 11.1) */
#define IPCRING_COMPAT_ACTIVITY_TIME 1u
/* compatible_features bit: MPMC endpoint records carry `sleeping` (LAYOUT.md section 16.6) */
#define IPCRING_COMPAT_SLEEPER_CLAIMS 2u
/* compatible_features bit: the stats blocks count late_wakes (LAYOUT.md section 11) */
#define IPCRING_COMPAT_LATE_WAKES 4u
/* The lock map (LAYOUT.md section 10): lock bytes at header.lock_map_offset + byte. */
#define IPCRING_LOCK_MAP_OFFSET (1ULL << 40) /* where creators put it (past any segment); follow the header */
#define IPCRING_LOCK_MAP_SIZE 16384u        /* bytes of the map */
#define IPCRING_LOCK_OPEN 0u                /* shared by every process that has the segment mapped;
                                               exclusive while gc removes or a reuse resets the ring */
#define IPCRING_LOCK_RECORDS 64u            /* record i (SPSC role, MPMC endpoint) is this + i, exclusive */
#define IPCRING_MAX_LOCK_RECORDS 64u        /* record locks in the map */
#define IPCRING_LOCK_SUBSCRIBERS 4096u      /* reserved: broadcast subscriber i is this + i */
#define IPCRING_LOCK_WAITERS 8192u          /* reserved: event-loop waiter i is this + i */

/* Number of control blocks the header publishes an offset for. */
#define IPCRING_BLOCK_COUNT 7u

/* ipcring_header.ring_kind */
#define IPCRING_RING_KIND_SPSC 1u /* one producer, one consumer: roles block, slot stamps */
#define IPCRING_RING_KIND_MPMC 2u /* any number of each: endpoint table, slot sequences */
#define IPCRING_RING_KIND_BROADCAST 3u /* one publisher, subscribers with their own cursors: roles
                                          block (publisher), subscriber table, slot seqlocks */

/* ipcring_header.overflow (broadcast rings; zero for the other kinds) */
#define IPCRING_OVERFLOW_BLOCK 1u     /* the publisher waits for the slowest live subscriber */
#define IPCRING_OVERFLOW_OVERWRITE 2u /* the publisher never waits; lapped subscribers are told */
/* Broadcast: most subscriber records (one lock byte each from IPCRING_LOCK_SUBSCRIBERS), the bit a
 * record's cursor carries while it is not a settled subscriber's, and the record size. */
#define IPCRING_MAX_SUBSCRIBERS 4096u
#define IPCRING_CURSOR_PROVISIONAL (1ULL << 63)
#define IPCRING_SUBSCRIBER_RECORD_SIZE 128u

/* ipcring_header.wait_strategy */
#define IPCRING_WAIT_FUTEX 1u     /* spin briefly, then sleep on the futex eventcount */
#define IPCRING_WAIT_SPIN 2u      /* busy-poll only; nobody sleeps, nobody needs waking */
#define IPCRING_WAIT_SEMAPHORE 3u /* sleep in sem_timedwait on the sem_t of the wait block */
#define IPCRING_WAIT_MUTEX 4u     /* glibc only: a robust pthread mutex per wait block guards a
                                     condition variable on `futex` (LAYOUT.md 9.2) */
#define IPCRING_WAIT_MEMBARRIER 5u /* the futex eventcount with asymmetric barriers: wakers a
                                      compiler barrier, sleepers membarrier(GLOBAL_EXPEDITED);
                                      every process registers first (LAYOUT.md 8.2) */

/* Mutex strategy: where the wait block holds the mutex_abi tag (u64, in reserved0[0]) and the
 * robust process-shared pthread_mutex_t (glibc 64-bit: 40 bytes, in reserved0[1..6]), and the
 * room the mutex may take (up to the semaphore field). */
#define IPCRING_MUTEX_ABI_OFFSET 8u
#define IPCRING_MUTEX_OFFSET 16u
#define IPCRING_MUTEX_ROOM 48u

/* Size of the glibc sem_t (x86-64, aarch64) in ipcring_wait_block.semaphore. */
#define IPCRING_SEMAPHORE_SIZE 32u

/* Eventcount (ipcring_wait_block): `futex` is the epoch (the futex word), `waiters` counts the
 * registered sleepers. */

/* Role records inside ipcring_roles_block. */
#define IPCRING_ROLE_RECORD_SIZE 32u
#define IPCRING_ROLE_PRODUCER 0u /* index of the producer's record */
#define IPCRING_ROLE_CONSUMER 1u /* index of the consumer's record */

/* MPMC endpoint records (ipcring_endpoint_table at roles_offset of an MPMC segment). */
#define IPCRING_MAX_ENDPOINTS 64u          /* records in the table: most handles attached at once */
#define IPCRING_ENDPOINT_RECORD_SIZE 64u   /* one cache line per record */
#define IPCRING_ENDPOINT_TABLE_SIZE 4096u  /* IPCRING_MAX_ENDPOINTS * IPCRING_ENDPOINT_RECORD_SIZE */
#define IPCRING_ENDPOINT_PRODUCER 1u       /* ipcring_endpoint_record.role of a producer */
#define IPCRING_ENDPOINT_CONSUMER 2u       /* ipcring_endpoint_record.role of a consumer */

/* MPMC slot sequence: set in (p + 1) | IPCRING_ABANDONED_BIT when position p was reserved and
 * never committed; consumers skip it. Positions stay below IPCRING_MAX_POSITION, the same bit. */
#define IPCRING_ABANDONED_BIT (1ULL << 63)

/* Claim word: pid | start_time_low32 << 32 (start time 0 if unknown); 0 = vacant. It names the
 * holder for display only: liveness is the record's lock, never the pid. */
#define IPCRING_CLAIM_PID(claim) ((uint32_t)((claim) & 0xffffffffULL))
#define IPCRING_CLAIM_START_TIME(claim) ((uint32_t)((claim) >> 32))
#define IPCRING_CLAIM(pid, start_time) ((uint64_t)(uint32_t)(pid) | ((uint64_t)(uint32_t)(start_time) << 32))

/* ---- Structures -------------------------------------------------------------------------- */

/* The segment header at byte 0. Written once by the creator, magic last (release); read and
 * validated once by every process that attaches. Never trust it again after validation. */
struct ipcring_header {
    uint64_t magic;                 /* 0: IPCRING_MAGIC; 0 while the creator initialises */
    uint32_t layout_version;        /* 8: IPCRING_LAYOUT_VERSION of the writer */
    uint32_t header_size;           /* 12: IPCRING_HEADER_SIZE (256) */
    uint32_t ring_kind;             /* 16: IPCRING_RING_KIND_* */
    uint32_t wait_strategy;         /* 20: IPCRING_WAIT_*; every process honours it */
    uint32_t incompatible_features; /* 24: unknown bits: refuse to attach */
    uint32_t compatible_features;   /* 28: unknown bits: ignore */
    uint64_t total_size;            /* 32: whole segment in bytes; equals the file size */
    uint64_t slot_count;            /* 40: power of two in 1 ..= IPCRING_MAX_SLOT_COUNT */
    uint32_t slot_size;             /* 48: largest payload, 0 ..= IPCRING_MAX_SLOT_SIZE */
    uint32_t slot_stride;           /* 52: distance between slots; multiple of 8,
                                       >= slot_payload_offset + slot_size */
    uint32_t slot_payload_offset;   /* 56: payload offset in a slot; multiple of 8, >= the slot
                                       header size of the kind (SPSC 8, MPMC and broadcast 16) */
    uint32_t creator_pid;           /* 60: creating process (information only) */
    uint32_t creator_uid;           /* 64: creator's effective uid; equals the file owner */
    uint32_t overflow;              /* 68: broadcast: IPCRING_OVERFLOW_*; other kinds: zero */
    uint64_t created_at_ns;         /* 72: creation time, ns since the Unix epoch (information) */
    uint64_t producer_offset;       /* 80: producer's ipcring_position_block (MPMC: tail) */
    uint64_t consumer_offset;       /* 88: consumer's ipcring_position_block (MPMC: head) */
    uint64_t not_empty_offset;      /* 96: ipcring_wait_block the consumer sleeps on */
    uint64_t not_full_offset;       /* 104: ipcring_wait_block the producer sleeps on */
    uint64_t roles_offset;          /* 112: SPSC: ipcring_roles_block (128 bytes);
                                       MPMC: ipcring_endpoint_table (4096 bytes) */
    uint64_t producer_stats_offset; /* 120: producer's ipcring_stats_block */
    uint64_t consumer_stats_offset; /* 128: consumer's ipcring_stats_block */
    uint64_t slots_offset;          /* 136: slot 0; multiple of IPCRING_BLOCK_SIZE */
    uint64_t lock_map_offset;       /* 144: the lock map: >= total_size, and lock_map_offset +
                                       IPCRING_LOCK_MAP_SIZE <= INT64_MAX (off_t) */
    uint64_t subscribers_offset;    /* 152: broadcast (IPCRING_INCOMPAT_SUBSCRIBER_TABLE): the
                                       subscriber table; other kinds: 0 */
    uint32_t subscriber_count;      /* 160: broadcast: records, 1 ..= IPCRING_MAX_SUBSCRIBERS; else 0 */
    uint32_t waiter_count;          /* 164: reserved: 0 */
    uint64_t waiters_offset;        /* 168: reserved (event-loop waiter table, a later feature): 0 */
    uint64_t reserved[10];          /* 176: zero */
};

/* A position counter alone on its block. SPSC producer: messages committed; consumer: messages
 * released. Both only grow; consumer <= producer <= consumer + slot_count.
 * Slot index = position & (slot_count - 1). Written only by its owner, with release.
 * MPMC: producer_offset holds tail (positions claimed by producers), consumer_offset head
 * (positions claimed by consumers); both move only by compare-and-swap (LAYOUT.md section 14). */
struct ipcring_position_block {
    uint64_t position;     /* 0 */
    uint64_t reserved[15]; /* 8: zero */
};

/* Where one side sleeps. Futex and membarrier strategies: an eventcount (shared futex: no
 * FUTEX_PRIVATE_FLAG) on the first cache line. Semaphore strategy: a process-shared POSIX semaphore on the second. Mutex
 * strategy: the same two words, a mutex_abi tag at 8 and a robust pthread_mutex_t at 16. */
struct ipcring_wait_block {
    uint32_t futex;        /* 0: the epoch: the futex word, bumped (release) by wakers */
    uint32_t waiters;      /* 4: number of registered sleepers */
    uint64_t reserved0[7]; /* 8: zero */
    uint64_t semaphore[4]; /* 64: semaphore strategy: a glibc sem_t, sem_init(pshared = 1) by the
                              creator: not_empty = used slots (initial 0), not_full = free slots
                              (initial slot_count). All zero under the other strategies. */
    uint64_t reserved1[4]; /* 96: zero */
};

/* Who holds a role. */
struct ipcring_role_record {
    uint64_t claim;          /* 0: IPCRING_CLAIM(pid, start_time) of the holder (display only),
                                0 when vacant; stored (release) by whoever holds the role's lock */
    uint64_t attach_count;   /* 8: claims since creation (fetch_add 1 after a claim) */
    uint64_t last_attach_ns; /* 16: time of the last claim, ns since the Unix epoch */
    uint64_t reaped;         /* 24: broadcast, producer record: the attach_count of a publisher
                                found dead with its claim left set (LAYOUT.md §19); else zero */
};

/* The attached roles (cold: touched on attach, detach and liveness checks). */
struct ipcring_roles_block {
    struct ipcring_role_record producer; /* 0 */
    struct ipcring_role_record consumer; /* 32 */
    uint64_t reserved[8];                /* 64: zero */
};

/* Counters one side increments (relaxed) on its slow path; for display only. */
struct ipcring_stats_block {
    uint64_t waits;           /* 0: blocking calls that found the ring full/empty */
    uint64_t futex_waits;     /* 8: FUTEX_WAIT calls by this side */
    uint64_t futex_wakes;     /* 16: FUTEX_WAKE calls by this side */
    uint64_t semaphore_waits; /* 24: sem_timedwait calls by this side (semaphore strategy) */
    uint64_t abandoned;       /* 32: MPMC: positions this side declared abandoned */
    uint64_t redelivered;     /* 40: MPMC: dead consumers' messages this side published again */
    uint64_t attaches;        /* 48: MPMC: endpoints of this side attached since creation */
    uint64_t last_active_ns;  /* 56: last seen active, ns since the epoch (COMPAT_ACTIVITY_TIME) */
    uint64_t late_wakes;      /* 64: timed-out sleeps whose condition held right after (lost wakeups) */
    uint64_t reserved[7];     /* 72: zero */
};

/* The start of every SPSC slot; the payload follows at header.slot_payload_offset. */
struct ipcring_slot_header {
    uint32_t length; /* 0: payload length of the committed message, <= slot_size */
    uint32_t stamp;  /* 4: (n + 1) mod 2^32 once message n is committed here; stored (release)
                        after the producer position. Producers MUST write it; consumers MAY
                        wait on it instead of the producer position (LAYOUT.md section 6). */
};

/* The start of every MPMC slot; the payload follows at header.slot_payload_offset (16). */
struct ipcring_mpmc_slot_header {
    uint64_t sequence; /* 0: the slot's turn for position p (LAYOUT.md section 14.1): p = free for the
                          producer of p; p + 1 = message p committed; (p + 1) | ABANDONED_BIT =
                          position p holds no message; p + slot_count = released by the consumer
                          of p. Creator: slot i starts at i. Atomic. */
    uint32_t length;   /* 8: payload length of the committed message, <= slot_size */
    uint32_t reserved; /* 12: zero */
};

/* One attached MPMC handle (one cache line: its owner writes pending_* on every operation). */
struct ipcring_endpoint_record {
    uint64_t claim;         /* 0: IPCRING_CLAIM(pid, start_time) of the owner (display only), 0 when
                               free; stored (release) by whoever holds the record's lock */
    uint32_t role;          /* 8: IPCRING_ENDPOINT_PRODUCER or IPCRING_ENDPOINT_CONSUMER */
    uint32_t reserved0;     /* 12: zero */
    uint64_t pending_start; /* 16: first position being claimed or held; stored before the CAS */
    uint64_t pending_count; /* 24: positions held from pending_start; 0 = holds nothing */
    uint64_t attached_ns;   /* 32: attach time, ns since the Unix epoch (information) */
    uint64_t sleeping;      /* 40: owner's claim while registered in waiters, else 0 (COMPAT_SLEEPER_CLAIMS) */
    uint64_t reserved[2];   /* 48: zero */
};

/* One broadcast subscriber, at subscribers_offset + i * IPCRING_SUBSCRIBER_RECORD_SIZE, guarded by
 * lock byte IPCRING_LOCK_SUBSCRIBERS + i (docs/design-broadcast.md). */
struct ipcring_subscriber_record {
    uint64_t claim;       /* 0: IPCRING_CLAIM of the holder, 0 when vacant */
    uint64_t cursor;      /* 8: next position the holder reads (release); IPCRING_CURSOR_PROVISIONAL
                             set while not a settled subscriber's (creators write the bit alone) */
    uint64_t sleeping;    /* 16: holder's claim while registered in not_empty.waiters, else 0 */
    uint64_t lagged;      /* 24: messages skipped (lapped or corrupted) */
    uint64_t received;    /* 32: messages delivered */
    uint64_t joined_at;   /* 40: position it started at */
    uint64_t attached_ns; /* 48: attach time, ns since the Unix epoch (information) */
    uint64_t reserved[9]; /* 56: zero */
};

/* The MPMC endpoint table at roles_offset (in place of the roles block). */
struct ipcring_endpoint_table {
    struct ipcring_endpoint_record records[IPCRING_MAX_ENDPOINTS]; /* 0 */
};

/* ---- Compile-time checks: the layout is a contract ---------------------------------------- */

#define IPCRING_ASSERT_SIZE(type, size) IPCRING_STATIC_ASSERT(sizeof(struct type) == (size), #type " size")
#define IPCRING_ASSERT_OFFSET(type, field, offset) \
    IPCRING_STATIC_ASSERT(offsetof(struct type, field) == (offset), #type "." #field " offset")

IPCRING_ASSERT_SIZE(ipcring_header, IPCRING_HEADER_SIZE);
IPCRING_ASSERT_SIZE(ipcring_position_block, IPCRING_BLOCK_SIZE);
IPCRING_ASSERT_SIZE(ipcring_wait_block, IPCRING_BLOCK_SIZE);
IPCRING_ASSERT_SIZE(ipcring_role_record, IPCRING_ROLE_RECORD_SIZE);
IPCRING_ASSERT_SIZE(ipcring_roles_block, IPCRING_BLOCK_SIZE);
IPCRING_ASSERT_SIZE(ipcring_stats_block, IPCRING_BLOCK_SIZE);
IPCRING_ASSERT_SIZE(ipcring_slot_header, IPCRING_SLOT_HEADER_SIZE);
IPCRING_ASSERT_SIZE(ipcring_mpmc_slot_header, IPCRING_MPMC_SLOT_HEADER_SIZE);
IPCRING_ASSERT_SIZE(ipcring_endpoint_record, IPCRING_ENDPOINT_RECORD_SIZE);
IPCRING_ASSERT_SIZE(ipcring_endpoint_table, IPCRING_ENDPOINT_TABLE_SIZE);
IPCRING_ASSERT_SIZE(ipcring_subscriber_record, IPCRING_SUBSCRIBER_RECORD_SIZE);

IPCRING_ASSERT_OFFSET(ipcring_header, magic, 0);
IPCRING_ASSERT_OFFSET(ipcring_header, layout_version, 8);
IPCRING_ASSERT_OFFSET(ipcring_header, header_size, 12);
IPCRING_ASSERT_OFFSET(ipcring_header, ring_kind, 16);
IPCRING_ASSERT_OFFSET(ipcring_header, wait_strategy, 20);
IPCRING_ASSERT_OFFSET(ipcring_header, incompatible_features, 24);
IPCRING_ASSERT_OFFSET(ipcring_header, compatible_features, 28);
IPCRING_ASSERT_OFFSET(ipcring_header, total_size, 32);
IPCRING_ASSERT_OFFSET(ipcring_header, slot_count, 40);
IPCRING_ASSERT_OFFSET(ipcring_header, slot_size, 48);
IPCRING_ASSERT_OFFSET(ipcring_header, slot_stride, 52);
IPCRING_ASSERT_OFFSET(ipcring_header, slot_payload_offset, 56);
IPCRING_ASSERT_OFFSET(ipcring_header, creator_pid, 60);
IPCRING_ASSERT_OFFSET(ipcring_header, creator_uid, 64);
IPCRING_ASSERT_OFFSET(ipcring_header, overflow, 68);
IPCRING_ASSERT_OFFSET(ipcring_header, created_at_ns, 72);
IPCRING_ASSERT_OFFSET(ipcring_header, producer_offset, 80);
IPCRING_ASSERT_OFFSET(ipcring_header, consumer_offset, 88);
IPCRING_ASSERT_OFFSET(ipcring_header, not_empty_offset, 96);
IPCRING_ASSERT_OFFSET(ipcring_header, not_full_offset, 104);
IPCRING_ASSERT_OFFSET(ipcring_header, roles_offset, 112);
IPCRING_ASSERT_OFFSET(ipcring_header, producer_stats_offset, 120);
IPCRING_ASSERT_OFFSET(ipcring_header, consumer_stats_offset, 128);
IPCRING_ASSERT_OFFSET(ipcring_header, slots_offset, 136);
IPCRING_ASSERT_OFFSET(ipcring_header, lock_map_offset, 144);
IPCRING_ASSERT_OFFSET(ipcring_header, subscribers_offset, 152);
IPCRING_ASSERT_OFFSET(ipcring_header, subscriber_count, 160);
IPCRING_ASSERT_OFFSET(ipcring_header, waiter_count, 164);
IPCRING_ASSERT_OFFSET(ipcring_header, waiters_offset, 168);
IPCRING_ASSERT_OFFSET(ipcring_header, reserved, 176);

IPCRING_ASSERT_OFFSET(ipcring_position_block, position, 0);
IPCRING_ASSERT_OFFSET(ipcring_position_block, reserved, 8);

IPCRING_ASSERT_OFFSET(ipcring_wait_block, futex, 0);
IPCRING_ASSERT_OFFSET(ipcring_wait_block, waiters, 4);
IPCRING_ASSERT_OFFSET(ipcring_wait_block, reserved0, 8);
IPCRING_ASSERT_OFFSET(ipcring_wait_block, semaphore, 64);
IPCRING_ASSERT_OFFSET(ipcring_wait_block, reserved1, 96);
IPCRING_STATIC_ASSERT(sizeof(((struct ipcring_wait_block *)0)->semaphore) == IPCRING_SEMAPHORE_SIZE,
                      "ipcring_wait_block.semaphore size");

IPCRING_ASSERT_OFFSET(ipcring_role_record, claim, 0);
IPCRING_ASSERT_OFFSET(ipcring_role_record, attach_count, 8);
IPCRING_ASSERT_OFFSET(ipcring_role_record, last_attach_ns, 16);
IPCRING_ASSERT_OFFSET(ipcring_role_record, reaped, 24);

IPCRING_ASSERT_OFFSET(ipcring_roles_block, producer, 0);
IPCRING_ASSERT_OFFSET(ipcring_roles_block, consumer, 32);
IPCRING_ASSERT_OFFSET(ipcring_roles_block, reserved, 64);

IPCRING_ASSERT_OFFSET(ipcring_stats_block, waits, 0);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, futex_waits, 8);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, futex_wakes, 16);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, semaphore_waits, 24);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, abandoned, 32);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, redelivered, 40);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, attaches, 48);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, last_active_ns, 56);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, late_wakes, 64);
IPCRING_ASSERT_OFFSET(ipcring_stats_block, reserved, 72);

IPCRING_ASSERT_OFFSET(ipcring_slot_header, length, 0);
IPCRING_ASSERT_OFFSET(ipcring_slot_header, stamp, 4);

IPCRING_ASSERT_OFFSET(ipcring_mpmc_slot_header, sequence, 0);
IPCRING_ASSERT_OFFSET(ipcring_mpmc_slot_header, length, 8);
IPCRING_ASSERT_OFFSET(ipcring_mpmc_slot_header, reserved, 12);

IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, claim, 0);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, role, 8);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, reserved0, 12);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, pending_start, 16);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, pending_count, 24);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, attached_ns, 32);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, sleeping, 40);
IPCRING_ASSERT_OFFSET(ipcring_endpoint_record, reserved, 48);

IPCRING_ASSERT_OFFSET(ipcring_endpoint_table, records, 0);

IPCRING_STATIC_ASSERT(IPCRING_ENDPOINT_TABLE_SIZE == IPCRING_MAX_ENDPOINTS * IPCRING_ENDPOINT_RECORD_SIZE,
                      "endpoint table size");
IPCRING_STATIC_ASSERT(IPCRING_MAX_ENDPOINTS <= IPCRING_MAX_LOCK_RECORDS, "every endpoint record has a lock");
IPCRING_STATIC_ASSERT(IPCRING_LOCK_RECORDS + IPCRING_MAX_LOCK_RECORDS <= IPCRING_LOCK_SUBSCRIBERS &&
                          IPCRING_LOCK_SUBSCRIBERS < IPCRING_LOCK_WAITERS && IPCRING_LOCK_WAITERS < IPCRING_LOCK_MAP_SIZE,
                      "lock map regions are disjoint");
IPCRING_STATIC_ASSERT(IPCRING_MAX_SEGMENT_SIZE <= IPCRING_LOCK_MAP_OFFSET, "the lock map lies past any segment");
IPCRING_STATIC_ASSERT(IPCRING_ABANDONED_BIT == IPCRING_MAX_POSITION, "the abandoned bit is the first impossible position bit");

#ifdef _PTHREAD_H /* glibc <pthread.h> was included first: the mutex strategy's mutex must fit */
IPCRING_STATIC_ASSERT(sizeof(pthread_mutex_t) <= IPCRING_MUTEX_ROOM, "pthread_mutex_t fits its room in the wait block");
#endif
#ifdef _SEMAPHORE_H /* glibc <semaphore.h> was included first: check the sem_t this peer will use */
IPCRING_STATIC_ASSERT(sizeof(sem_t) == IPCRING_SEMAPHORE_SIZE, "sem_t fits ipcring_wait_block.semaphore exactly");
#endif

IPCRING_STATIC_ASSERT(IPCRING_MAGIC == ((uint64_t)'I' | (uint64_t)'P' << 8 | (uint64_t)'C' << 16 | (uint64_t)'R' << 24 |
                                        (uint64_t)'I' << 32 | (uint64_t)'N' << 40 | (uint64_t)'G' << 48),
                      "IPCRING_MAGIC is \"IPCRING\\0\" little-endian");

/* ---- Atomic accesses a peer must get right (GCC/Clang __atomic builtins) ------------------ */

/* The magic, with acquire: pairs with the creator's release store of it, which it makes after
 * writing the rest of the header. Zero means "not initialised yet". */
static inline uint64_t ipcring_load_magic(const struct ipcring_header *header) {
    return __atomic_load_n(&header->magic, __ATOMIC_ACQUIRE);
}

/* The peer's position, with acquire: pairs with the peer's release store in
 * ipcring_store_position, so the slots it committed (producer) or finished reading (consumer)
 * are visible/free before this side touches them. */
static inline uint64_t ipcring_load_position(const struct ipcring_position_block *block) {
    return __atomic_load_n(&block->position, __ATOMIC_ACQUIRE);
}

/* Publishes this side's position, with release: every slot write (producer) or read (consumer)
 * made before it happens-before the peer's acquire load in ipcring_load_position. */
static inline void ipcring_store_position(struct ipcring_position_block *block, uint64_t position) {
    __atomic_store_n(&block->position, position, __ATOMIC_RELEASE);
}

/* The waker's half of the eventcount, to run right after ipcring_store_position on the peer's
 * wait word (not_empty after a producer commit, not_full after a consumer release), under the
 * futex wait strategy only. The seq_cst fence pairs with the sleeper's fence between its
 * registration and its re-check (Dekker): either this load sees the registration, or the sleeper
 * sees the new position. Returns nonzero when the caller must now call
 *     syscall(SYS_futex, &block->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0)
 * (shared futex: never FUTEX_WAKE_PRIVATE). The epoch bump makes a sleeper that has registered
 * but not yet reached FUTEX_WAIT return at once instead of sleeping: it waits on the epoch value
 * it loaded after registering. */
static inline int ipcring_eventcount_prepare_wake(struct ipcring_wait_block *block) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&block->waiters, __ATOMIC_RELAXED) == 0) {
        return 0;
    }
    /* Release: a sleeper whose acquire load of the epoch reads this bump sees the publication. */
    __atomic_fetch_add(&block->futex, 1u, __ATOMIC_RELEASE);
    return 1;
}

/* Membarrier strategy (LAYOUT.md 8.2): the same waker's half with only a compiler barrier, which
 * is enough because every sleeper calls membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) between its
 * registration and its re-check. Valid only in a process that has called
 * ipcring_membarrier_register() successfully before it attached (then a sleeper's membarrier makes
 * this thread run a full barrier); returns as ipcring_eventcount_prepare_wake. */
static inline int ipcring_eventcount_prepare_wake_light(struct ipcring_wait_block *block) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&block->waiters, __ATOMIC_RELAXED) == 0) {
        return 0;
    }
    __atomic_fetch_add(&block->futex, 1u, __ATOMIC_RELEASE);
    return 1;
}

/* Membarrier strategy: every process registers once, before it attaches (LAYOUT.md 8.2). Returns
 * 0, or -1 with errno set (ENOSYS/EINVAL before Linux 4.16; EPERM under a seccomp filter): then the
 * process MUST NOT attach to a ring of this strategy. syscall() is declared by <unistd.h> only with
 * _GNU_SOURCE or _DEFAULT_SOURCE defined before the first system header (as consumer.c does). */
#if defined(SYS_membarrier) && (defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE))
#include <unistd.h>
static inline int ipcring_membarrier_register(void) {
    return (int)syscall(SYS_membarrier, 1 << 2 /* MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED */, 0, 0);
}

/* Membarrier strategy: the sleeper's barrier, between its registration (the waiters increment)
 * and its load of the epoch, in place of the futex strategy's seq_cst fence. If it fails, the
 * caller MUST NOT sleep: it decrements waiters again and polls. */
static inline int ipcring_membarrier_sleeper_barrier(void) {
    return (int)syscall(SYS_membarrier, 1 << 1 /* MEMBARRIER_CMD_GLOBAL_EXPEDITED */, 0, 0);
}
#endif

/* ---- MPMC (LAYOUT.md sections 14-17) ---------------------------------------------------- */

/* tail and head are read with ipcring_load_position (acquire): a recoverer that reads a value
 * written by (or after) a claiming CAS sees the intent its claimer stored before that CAS. */

/* A slot's sequence, with acquire: pairs with the release store that handed the slot over (a
 * commit: the payload and length are visible; a release: the previous reader is done). */
static inline uint64_t ipcring_mpmc_load_sequence(const struct ipcring_mpmc_slot_header *slot) {
    return __atomic_load_n(&slot->sequence, __ATOMIC_ACQUIRE);
}

/* Hands a slot over (commit: p + 1 or (p + 1) | IPCRING_ABANDONED_BIT; release: p + slot_count),
 * with release, after every write (producer) or read (consumer) of the slot. */
static inline void ipcring_mpmc_store_sequence(struct ipcring_mpmc_slot_header *slot, uint64_t sequence) {
    __atomic_store_n(&slot->sequence, sequence, __ATOMIC_RELEASE);
}

/* Declares, in this handle's own record, the positions it is about to claim: stores made BEFORE
 * the claiming CAS, whose release publishes them. Both with release (free on x86): a recoverer
 * loads both with acquire, so a start and a count of different intents are never paired without
 * the holder's publications being visible; this also keeps the recovery argument valid under the
 * C++20 rules (LAYOUT.md section 17). */
static inline void ipcring_mpmc_declare_intent(struct ipcring_endpoint_record *record, uint64_t start, uint64_t count) {
    __atomic_store_n(&record->pending_start, start, __ATOMIC_RELEASE);
    __atomic_store_n(&record->pending_count, count, __ATOMIC_RELEASE);
}

/* Declares that this handle holds nothing, with release: after the sequence stores of every
 * position it held (and when a claim attempt ends without a claim). */
static inline void ipcring_mpmc_clear_intent(struct ipcring_endpoint_record *record) {
    __atomic_store_n(&record->pending_count, 0, __ATOMIC_RELEASE);
}

/* Claims positions *expected .. desired - 1 by moving tail (producers) or head (consumers) from
 * *expected to desired: acq_rel on success, relaxed on failure (then *expected holds the current
 * value). Returns nonzero on success. */
static inline int ipcring_mpmc_claim(struct ipcring_position_block *block, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(&block->position, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* ---- Semaphore strategy (LAYOUT.md section 9.1) ------------------------------------------ */

/* The sem_t of a wait block, to pass to sem_trywait / sem_post / sem_timedwait as (sem_t *).
 * Never sem_init it (the creator did) and never sem_destroy it. */
static inline void *ipcring_wait_block_semaphore(struct ipcring_wait_block *block) {
    return (void *)block->semaphore;
}

/* ---- Liveness locks (LAYOUT.md section 10) ------------------------------------------------ */

#ifdef F_OFD_SETLK /* define _GNU_SOURCE and include <fcntl.h> before this header to have them */

/* Lock offsets reach 2^40 and more: off_t must be 64 bits (on 32-bit targets, build with
 * -D_FILE_OFFSET_BITS=64). */
IPCRING_STATIC_ASSERT(sizeof(off_t) == 8, "off_t is 64 bits");

/* Opens the ring file open as `file_fd` again, read-write and close-on-exec, as a new open file
 * description of this process's own, for its locks: OFD locks belong to the description, so a
 * descriptor that reaches another process (SCM_RIGHTS, an inherited one, one a library exposes)
 * would carry them along. First through /proc/self/fd/N (works for a memfd too); if that fails
 * and `fallback_path` is not NULL (a ring's /dev/shm/NAME), by that path with O_NOFOLLOW.
 * Checks that the new description is of the same file (st_dev, st_ino). On success stores the
 * new descriptor in *lock_fd and returns 0; on failure returns -1 with errno set (ESTALE: the
 * path now names another file). Keep *lock_fd open while attached and never hand it out; do not
 * let a fork()ed child keep it either (close it in the child: it would keep the locks alive). */
static inline int ipcring_lock_open(int file_fd, const char *fallback_path, int *lock_fd) {
    struct stat original;
    struct stat again;
    char proc_path[40];
    if (fstat(file_fd, &original) != 0) {
        return -1;
    }
    snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", file_fd);
    int fd = open(proc_path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && fallback_path != NULL) {
        fd = open(fallback_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &again) != 0 || again.st_dev != original.st_dev || again.st_ino != original.st_ino) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    *lock_fd = fd;
    return 0;
}

/* The one-byte lock record of lock-map byte `byte`: SEEK_SET, l_len 1, l_pid 0 (OFD locks). */
static inline int ipcring_lock_record(uint64_t lock_map_offset, uint64_t byte, short type, struct flock *record) {
    if (byte >= IPCRING_LOCK_MAP_SIZE || lock_map_offset > (uint64_t)INT64_MAX - IPCRING_LOCK_MAP_SIZE) {
        errno = EINVAL;
        return -1;
    }
    memset(record, 0, sizeof *record);
    record->l_type = type;
    record->l_whence = SEEK_SET;
    record->l_start = (off_t)(lock_map_offset + byte);
    record->l_len = 1;
    return 0;
}

/* F_OFD_SETLK of `type` (F_RDLCK shared, F_WRLCK exclusive, F_UNLCK) on lock-map byte `byte`
 * (IPCRING_LOCK_OPEN, IPCRING_LOCK_RECORDS + i), through this process's own description
 * `lock_fd`. Never blocks. Returns 1 if set, 0 if another description holds a conflicting lock
 * (EAGAIN or EACCES: for a record, a live holder), -1 on any other error (errno set). Taking a
 * lock this description already holds succeeds (and converts it): a process keeps track itself of
 * the records it holds. */
static inline int ipcring_lock_try(int lock_fd, uint64_t lock_map_offset, uint64_t byte, short type) {
    struct flock record;
    if (ipcring_lock_record(lock_map_offset, byte, type, &record) != 0) {
        return -1;
    }
    if (fcntl(lock_fd, F_OFD_SETLK, &record) == 0) {
        return 1;
    }
    return errno == EAGAIN || errno == EACCES ? 0 : -1;
}

/* F_OFD_GETLK on lock-map byte `byte`: returns 1 if another open file description holds any
 * lock there (for a record: its holder is alive), 0 if none does, -1 on error (errno set). It
 * never reports the locks of `lock_fd`'s own description. About half a microsecond: for the
 * thorough peer check (at most once per sleep slice), not the fast path. */
static inline int ipcring_lock_test(int lock_fd, uint64_t lock_map_offset, uint64_t byte) {
    struct flock record;
    if (ipcring_lock_record(lock_map_offset, byte, F_WRLCK, &record) != 0) {
        return -1;
    }
    if (fcntl(lock_fd, F_OFD_GETLK, &record) != 0) {
        return -1;
    }
    return record.l_type != F_UNLCK;
}

#endif /* F_OFD_SETLK */

#ifdef __cplusplus
}
#endif

#endif /* IPCRING_H */
