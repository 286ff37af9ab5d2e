/*
 * consumer: the consumer side of an ipcring SPSC ring, in C, from shm-layout/LAYOUT.md alone.
 *
 *     consumer NAME --count N
 *
 * Attaches to the ring NAME (layout 2, validated as the Rust side does), takes the consumer role's
 * lock, prints the next N messages to stdout, one per line (payload, then '\n'), releases the
 * role and exits 0. Errors: one line on stderr, exit 1 (among them: the role is taken by a live
 * consumer; the producer left, or died, before N messages came); usage errors exit 2.
 *
 * Liveness is by OFD locks (LAYOUT.md section 10): the consumer holds, through an open file
 * description of its own, a shared lock on the lock map's open byte while the ring is mapped and
 * an exclusive one on the consumer's record byte while it holds the role. The kernel drops both
 * when the process exits, however it exits, so no pid is ever checked.
 *
 * It busy-polls for messages (never sleeps on the futex), but wakes a sleeping producer exactly
 * as the Rust side does, so it works under the futex, membarrier and spin wait strategies.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o consumer consumer.c   (tests/c_consumer.rs)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../ipcring.h"

#define PROGRAM "consumer"
#define USAGE "usage: consumer NAME --count N"
/* Longest ring name without the leading '/', as in src/segment.rs. */
#define MAX_NAME_LEN 200
/* Empty polls between two sched_yield calls: on a 2-core machine the producer needs the CPU. */
#define POLLS_PER_YIELD 128u
/* Longest wait for the open lock while `gc` or a reuse holds it exclusively (src/lock/mod.rs). */
#define BUSY_WAIT_NS 2000000000ull
/* Shortest time between two thorough checks of the producer's lock while the ring is empty. */
#define THOROUGH_CHECK_NS 10000000ull

/* The validated, process-local geometry: never re-read from the shared header. */
struct geometry {
    uint32_t wait_strategy;
    uint64_t lock_map_offset;
    uint64_t slot_count;
    uint32_t slot_size;
    uint32_t slot_stride;
    uint32_t slot_payload_offset;
    uint64_t block_offsets[IPCRING_BLOCK_COUNT]; /* in header order: producer .. consumer_stats */
    uint64_t slots_offset;
};

/* What must be undone on exit: the role claim and the wake that lets the producer notice. */
static struct {
    const char *name;
    int lock_fd;              /* this process's own open file description of the ring, or -1 */
    uint64_t lock_map_offset; /* validated */
    uint64_t *claim;          /* non-NULL while this process holds the consumer role's lock */
    uint32_t wait_strategy;
    struct ipcring_wait_block *not_full;
    struct ipcring_stats_block *stats;
} state;

static void release_role(void);

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *format, ...) {
    fflush(stdout); /* the messages printed so far were consumed: hand them on */
    release_role();
    va_list arguments;
    va_start(arguments, format);
    fputs(PROGRAM ": ", stderr);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(1);
}

__attribute__((noreturn)) static void usage_error(const char *problem) {
    fprintf(stderr, PROGRAM ": %s; " USAGE "\n", problem);
    exit(2);
}

__attribute__((noreturn)) static void corrupted(const char *field, unsigned long long value) {
    fail("ring %s is corrupted: %s has the impossible value %llu; remove and recreate the ring", state.name, field,
         value);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

static uint64_t clock_ns(clockid_t clock) {
    struct timespec now;
    if (clock_gettime(clock, &now) != 0) {
        return 0;
    }
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* ---- Arguments ------------------------------------------------------------------------- */

/* The portable name rules of src/segment.rs: optional '/', then 1..=200 of [A-Za-z0-9._-], not
 * starting with '.'. Writes the name with one leading '/'. */
static int normalize_name(const char *name, char out[MAX_NAME_LEN + 2]) {
    const char *bare = name[0] == '/' ? name + 1 : name;
    size_t length = strlen(bare);
    if (length == 0 || length > MAX_NAME_LEN || bare[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < length; i++) {
        char c = bare[i];
        int allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
        if (!allowed) {
            return 0;
        }
    }
    out[0] = '/';
    memcpy(out + 1, bare, length + 1);
    return 1;
}

static uint64_t parse_count(const char *text) {
    if (text[0] < '0' || text[0] > '9') {
        usage_error("--count takes a non-negative integer");
    }
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        usage_error("--count takes a non-negative integer");
    }
    return value;
}

/* ---- Validation: mirrors Geometry::from_header ----------------------------------------- */

struct region {
    uint64_t offset;
    uint64_t length;
    const char *field;
};

static void validate(const struct ipcring_header *header, uint64_t file_size, struct geometry *geometry) {
    if (header->magic == 0) {
        fail("ring %s is not initialised yet (its creator is still setting it up, or died); retry, or remove it",
             state.name);
    }
    if (header->magic != IPCRING_MAGIC) {
        corrupted("magic", header->magic);
    }
    if (header->layout_version != IPCRING_LAYOUT_VERSION) {
        /* Version 1 proved liveness by pid, which this consumer no longer checks: attaching to
         * it would let a version-1 peer take the role of a live consumer over. */
        fail("ring %s: layout version %u is not supported by this build (it attaches to version %u only); use a "
             "consumer of the same version as the creator",
             state.name, header->layout_version, IPCRING_LAYOUT_VERSION);
    }
    if (header->header_size != IPCRING_HEADER_SIZE) {
        corrupted("header_size", header->header_size);
    }
    uint32_t unknown = header->incompatible_features & ~IPCRING_KNOWN_INCOMPATIBLE_FEATURES;
    if (unknown != 0) {
        fail("ring %s uses incompatible features 0x%x unknown to this build; upgrade", state.name, unknown);
    }
    /* Every version-2 segment has the lock map; one without the bit was not written by a
     * version-2 creator. */
    if ((header->incompatible_features & IPCRING_INCOMPAT_OFD_LOCKS) == 0) {
        corrupted("incompatible_features", header->incompatible_features);
    }
    /* The lock map lies at or past the end of the file (locking there allocates nothing), and
     * its last byte is a valid off_t. */
    uint64_t lock_map_offset = header->lock_map_offset;
    if (lock_map_offset < file_size || lock_map_offset > (uint64_t)INT64_MAX - IPCRING_LOCK_MAP_SIZE) {
        corrupted("lock_map_offset", lock_map_offset);
    }
    /* This consumer reads SPSC rings only: say so for a known kind, before that kind's fields. */
    if (header->ring_kind == IPCRING_RING_KIND_MPMC || header->ring_kind == IPCRING_RING_KIND_BROADCAST) {
        fail("ring %s is not an SPSC ring (ring_kind %u): this consumer reads SPSC rings only", state.name,
             header->ring_kind);
    }
    if (header->ring_kind != IPCRING_RING_KIND_SPSC) {
        corrupted("ring_kind", header->ring_kind);
    }
    /* An SPSC ring has no subscriber table, and nothing uses the waiter table yet: a value there
     * is garbage, or from a newer writer that should have set a feature bit. */
    if ((header->incompatible_features & IPCRING_INCOMPAT_SUBSCRIBER_TABLE) != 0) {
        corrupted("incompatible_features", header->incompatible_features);
    }
    if (header->overflow != 0) {
        corrupted("overflow", header->overflow);
    }
    if (header->subscribers_offset != 0 || header->subscriber_count != 0) {
        corrupted("subscribers_offset", header->subscribers_offset);
    }
    if (header->waiters_offset != 0 || header->waiter_count != 0) {
        corrupted("waiters_offset", header->waiters_offset);
    }
    if (header->wait_strategy != IPCRING_WAIT_FUTEX && header->wait_strategy != IPCRING_WAIT_SPIN &&
        header->wait_strategy != IPCRING_WAIT_MEMBARRIER) {
        corrupted("wait_strategy", header->wait_strategy);
    }
    if (header->total_size != file_size || file_size > IPCRING_MAX_SEGMENT_SIZE) {
        corrupted("total_size", header->total_size);
    }
    uint64_t slot_count = header->slot_count;
    if (slot_count == 0 || (slot_count & (slot_count - 1)) != 0 || slot_count > IPCRING_MAX_SLOT_COUNT) {
        corrupted("slot_count", slot_count);
    }
    if (header->slot_size > IPCRING_MAX_SLOT_SIZE) {
        corrupted("slot_size", header->slot_size);
    }
    uint32_t payload_offset = header->slot_payload_offset;
    if (payload_offset < IPCRING_SLOT_HEADER_SIZE || payload_offset % IPCRING_SLOT_ALIGN != 0 ||
        payload_offset > IPCRING_MAX_SLOT_SIZE) {
        corrupted("slot_payload_offset", payload_offset);
    }
    uint32_t stride = header->slot_stride;
    if (stride % IPCRING_SLOT_ALIGN != 0 || (uint64_t)stride < (uint64_t)payload_offset + header->slot_size) {
        corrupted("slot_stride", stride);
    }

    /* Every region must lie in [IPCRING_HEADER_SIZE, file_size), aligned, and no two may
     * overlap. Header order, as Block::ALL. */
    struct region regions[IPCRING_BLOCK_COUNT + 1] = {
        {header->producer_offset, IPCRING_BLOCK_SIZE, "producer_offset"},
        {header->consumer_offset, IPCRING_BLOCK_SIZE, "consumer_offset"},
        {header->not_empty_offset, IPCRING_BLOCK_SIZE, "not_empty_offset"},
        {header->not_full_offset, IPCRING_BLOCK_SIZE, "not_full_offset"},
        {header->roles_offset, IPCRING_BLOCK_SIZE, "roles_offset"},
        {header->producer_stats_offset, IPCRING_BLOCK_SIZE, "producer_stats_offset"},
        {header->consumer_stats_offset, IPCRING_BLOCK_SIZE, "consumer_stats_offset"},
        {header->slots_offset, 0, "slots_offset"},
    };
    uint64_t slots_bytes;
    if (__builtin_mul_overflow((uint64_t)stride, slot_count, &slots_bytes)) {
        corrupted("slot_count", slot_count);
    }
    regions[IPCRING_BLOCK_COUNT].length = slots_bytes;
    size_t region_count = sizeof regions / sizeof regions[0];
    for (size_t i = 0; i < region_count; i++) {
        uint64_t end;
        if (regions[i].offset % IPCRING_BLOCK_SIZE != 0 || regions[i].offset < IPCRING_HEADER_SIZE ||
            __builtin_add_overflow(regions[i].offset, regions[i].length, &end) || end > file_size) {
            corrupted(regions[i].field, regions[i].offset);
        }
    }
    for (size_t i = 0; i < IPCRING_BLOCK_COUNT; i++) {
        geometry->block_offsets[i] = regions[i].offset;
    }
    /* Disjointness: sort by offset (insertion sort, 8 entries), then compare neighbours. */
    for (size_t i = 1; i < region_count; i++) {
        struct region moving = regions[i];
        size_t j = i;
        for (; j > 0 && regions[j - 1].offset > moving.offset; j--) {
            regions[j] = regions[j - 1];
        }
        regions[j] = moving;
    }
    for (size_t i = 0; i + 1 < region_count; i++) {
        if (regions[i].offset + regions[i].length > regions[i + 1].offset) {
            corrupted(regions[i + 1].field, regions[i + 1].offset);
        }
    }

    geometry->wait_strategy = header->wait_strategy;
    geometry->lock_map_offset = lock_map_offset;
    geometry->slot_count = slot_count;
    geometry->slot_size = header->slot_size;
    geometry->slot_stride = stride;
    geometry->slot_payload_offset = payload_offset;
    geometry->slots_offset = header->slots_offset;
}

/* ---- Roles and wakeups ------------------------------------------------------------------ */

/* The waker's half of the eventcount on "not full", under the futex and membarrier strategies. */
static void wake_producer(void) {
    int wake;
    switch (state.wait_strategy) {
    case IPCRING_WAIT_FUTEX:
        wake = ipcring_eventcount_prepare_wake(state.not_full);
        break;
    case IPCRING_WAIT_MEMBARRIER:
        /* Registered before attaching (main): the producer's membarrier orders this side. */
        wake = ipcring_eventcount_prepare_wake_light(state.not_full);
        break;
    default:
        wake = 0;
    }
    if (!wake) {
        return;
    }
    /* Shared futex (no FUTEX_PRIVATE_FLAG): the sleeper is another process. */
    syscall(SYS_futex, &state.not_full->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    __atomic_fetch_add(&state.stats->futex_wakes, 1, __ATOMIC_RELAXED);
}

/* Opens this process's own description of the ring file `fd` and takes the shared lock on the
 * open byte, waiting (at most BUSY_WAIT_NS) while a `gc` or a reuse holds it exclusively. From
 * then on `gc` cannot judge the ring unused. */
static void take_open_lock(int fd, const char *path) {
    if (ipcring_lock_open(fd, path, &state.lock_fd) != 0) {
        fail("opening ring %s again for its locks: %s", state.name, strerror(errno));
    }
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + BUSY_WAIT_NS;
    struct timespec pause = {0, 50000};
    for (;;) {
        int taken = ipcring_lock_try(state.lock_fd, state.lock_map_offset, IPCRING_LOCK_OPEN, F_RDLCK);
        if (taken < 0) {
            fail("locking ring %s: %s", state.name, strerror(errno));
        }
        if (taken) {
            return;
        }
        if (clock_ns(CLOCK_MONOTONIC) >= deadline) {
            fail("ring %s is busy: it is being removed or reset; retry", state.name);
        }
        nanosleep(&pause, NULL);
        if (pause.tv_nsec < 20000000) {
            pause.tv_nsec *= 2;
        }
    }
}

/* Takes the consumer role: its record lock decides. Held by another description means a live
 * consumer (in whatever PID namespace); free means none, or one that died, whatever the claim
 * word still says. */
static void claim_role(struct ipcring_role_record *record, struct ipcring_wait_block *not_empty) {
    int taken = ipcring_lock_try(state.lock_fd, state.lock_map_offset, IPCRING_LOCK_RECORDS + IPCRING_ROLE_CONSUMER,
                                 F_WRLCK);
    if (taken < 0) {
        fail("locking the consumer role of ring %s: %s", state.name, strerror(errno));
    }
    if (!taken) {
        /* Acquire: pairs with the holder's release store; the pid is for the message only (0 if
         * the holder has not stored its claim word yet). */
        uint64_t holder = __atomic_load_n(&record->claim, __ATOMIC_ACQUIRE);
        fail("ring %s: the consumer role is taken by live process %u; at most one consumer may attach", state.name,
             IPCRING_CLAIM_PID(holder));
    }
    state.claim = &record->claim;
    /* The claim word names the holder for `ipcring info` (a pid-only claim: no start time).
     * Release: pairs with the producer's acquire load in its peer check. */
    __atomic_store_n(&record->claim, IPCRING_CLAIM(getpid(), 0), __ATOMIC_RELEASE);
    /* Only the consumer sleeps on "not empty": registrations left there belong to a dead
     * predecessor and would only cost the producer useless wake calls. */
    __atomic_store_n(&not_empty->waiters, 0u, __ATOMIC_RELAXED);
}

static void release_role(void) {
    if (state.claim == NULL) {
        return;
    }
    /* Vacate the word, then unlock: this process holds the lock, so the word is its own.
     * Release: pairs with the acquire loads of the claim in the producer's peer check. */
    __atomic_store_n(state.claim, 0, __ATOMIC_RELEASE);
    ipcring_lock_try(state.lock_fd, state.lock_map_offset, IPCRING_LOCK_RECORDS + IPCRING_ROLE_CONSUMER, F_UNLCK);
    state.claim = NULL;
    /* A producer blocked on a full ring must notice that its consumer left. */
    wake_producer();
}

/* True if the producer attached once and is gone: it released its role (claim word 0), or, at a
 * thorough check, nobody holds the producer's record lock any more (it died). Before the first
 * producer attached (attach_count 0) the consumer waits. */
static int producer_gone(struct ipcring_role_record *record, int thorough) {
    /* Acquire: pairs with the producer's release store of 0, made after its last position. */
    uint64_t claim = __atomic_load_n(&record->claim, __ATOMIC_ACQUIRE);
    int attached_once = __atomic_load_n(&record->attach_count, __ATOMIC_RELAXED) > 0;
    if (claim == 0 || !thorough) {
        return claim == 0 && attached_once;
    }
    int held = ipcring_lock_test(state.lock_fd, state.lock_map_offset, IPCRING_LOCK_RECORDS + IPCRING_ROLE_PRODUCER);
    /* A lock that cannot be tested never makes a peer dead. */
    return held == 0 && attached_once;
}

static void check_positions(uint64_t producer, uint64_t consumer, uint64_t slot_count) {
    if (producer >= IPCRING_MAX_POSITION) {
        corrupted("producer_position", producer);
    }
    if (consumer > producer) {
        corrupted("consumer_position", consumer);
    }
    if (producer - consumer > slot_count) {
        corrupted("producer_position", producer);
    }
}

/* ---- Main ------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *name_argument = NULL;
    const char *count_argument = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts(USAGE "\nPrints the next N messages of the ipcring SPSC ring NAME, one per line.");
            return 0;
        } else if (strcmp(argv[i], "--count") == 0) {
            if (i + 1 == argc) {
                usage_error("--count needs a value");
            }
            count_argument = argv[++i];
        } else if (argv[i][0] == '-') {
            usage_error("unknown option");
        } else if (name_argument == NULL) {
            name_argument = argv[i];
        } else {
            usage_error("more than one ring name");
        }
    }
    if (name_argument == NULL || count_argument == NULL) {
        usage_error("NAME and --count N are required");
    }
    uint64_t count = parse_count(count_argument);
    char name[MAX_NAME_LEN + 2];
    if (!normalize_name(name_argument, name)) {
        usage_error("invalid ring name: use 1 to 200 of A-Z a-z 0-9 . _ - after an optional '/', not starting "
                    "with '.'");
    }
    state.name = name;

    /* Segment::open_with: open, check the file, validate a copy of the header, take the open
     * lock, map, then validate the header again from the mapping. */
    state.lock_fd = -1;
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) {
        if (errno == ENOENT) {
            fail("ring %s does not exist; create it first", name);
        } else if (errno == EACCES || errno == EPERM || errno == ELOOP) {
            fail("permission denied on ring %s; check its owner and mode with `ls -l /dev/shm`", name);
        }
        fail("opening ring %s: %s", name, strerror(errno));
    }
    struct stat file;
    if (fstat(fd, &file) != 0) {
        fail("inspecting ring %s: %s", name, strerror(errno));
    }
    if (!S_ISREG(file.st_mode)) {
        corrupted("file type", (unsigned long long)file.st_mode);
    }
    if (file.st_uid != geteuid()) {
        fail("ring %s is owned by uid %u, not by this user (uid %u); refusing to attach to another user's ring",
             name, (unsigned)file.st_uid, (unsigned)geteuid());
    }
    uint64_t file_size = (uint64_t)file.st_size;
    if (file_size == 0) {
        fail("ring %s is not initialised yet (its creator is still setting it up, or died); retry, or remove it",
             name);
    }
    if (file_size < IPCRING_HEADER_SIZE || file_size > SIZE_MAX) {
        corrupted("file size", file_size);
    }
    /* Validate a copy read with pread before mapping anything: a hostile file is refused without
     * a page being mapped, and the copy says where the lock map is. */
    struct ipcring_header planned;
    errno = 0;
    if (pread(fd, &planned, sizeof planned, 0) != (ssize_t)sizeof planned) {
        fail("reading ring %s: %s", name, errno != 0 ? strerror(errno) : "short read");
    }
    struct geometry geometry;
    validate(&planned, file_size, &geometry);
    /* A sparse file would fault (SIGBUS) on a page tmpfs has no room for: creators allocate the
     * whole file, so a hole means a file not made by one (hugetlbfs reports no blocks). */
    struct statfs filesystem;
    int hugetlbfs = fstatfs(fd, &filesystem) == 0 && filesystem.f_type == HUGETLBFS_MAGIC;
    uint64_t allocated = (uint64_t)file.st_blocks * 512u;
    if (allocated < file_size && !hugetlbfs) {
        corrupted("allocated size (a sparse file)", allocated);
    }
    state.lock_map_offset = geometry.lock_map_offset;
    char path[sizeof "/dev/shm" + MAX_NAME_LEN + 1];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    take_open_lock(fd, path);
    /* After the open lock: a `gc` that removed the ring just before left a file with no name. */
    if (fstat(fd, &file) != 0 || file.st_nlink == 0) {
        fail("ring %s does not exist; create it first", name);
    }
    /* No MAP_POPULATE: pages are faulted in as they are touched. */
    unsigned char *base = mmap(NULL, (size_t)file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        fail("mapping ring %s: %s", name, strerror(errno));
    }
    /* The locks live on state.lock_fd, this process's own description, not on this one. */
    close(fd);

    /* Acquire: pairs with the creator's release store of the magic, made after the rest of the
     * header: seeing the magic means seeing the whole header. Then one private copy, which is
     * all this process ever trusts (a peer may rewrite the shared header later); it must be the
     * header validated above. */
    uint64_t magic = ipcring_load_magic((const struct ipcring_header *)base);
    struct ipcring_header header;
    const volatile unsigned char *source = base;
    unsigned char *copy = (unsigned char *)&header;
    for (size_t i = 0; i < sizeof header; i++) {
        copy[i] = source[i];
    }
    header.magic = magic;
    if (memcmp(&header, &planned, sizeof header) != 0) {
        corrupted("header (changed while attaching)", 0);
    }
    if (header.creator_uid != file.st_uid) {
        corrupted("creator_uid", header.creator_uid);
    }

    /* Every pointer comes from the validated geometry: aligned and inside the mapping. */
    struct ipcring_position_block *producer = (void *)(base + geometry.block_offsets[0]);
    struct ipcring_position_block *consumer = (void *)(base + geometry.block_offsets[1]);
    struct ipcring_wait_block *not_empty = (void *)(base + geometry.block_offsets[2]);
    struct ipcring_roles_block *roles = (void *)(base + geometry.block_offsets[4]);
    unsigned char *slots = base + geometry.slots_offset;
    state.not_full = (void *)(base + geometry.block_offsets[3]);
    state.stats = (void *)(base + geometry.block_offsets[6]);
    state.wait_strategy = geometry.wait_strategy;
    if (state.wait_strategy == IPCRING_WAIT_MEMBARRIER && ipcring_membarrier_register() != 0) {
        fail("membarrier registration refused (the membarrier wait strategy needs it): %s", strerror(errno));
    }

    claim_role(&roles->consumer, not_empty);
    /* Positions are read only after the claim: a predecessor may have released until then. */
    uint64_t position = ipcring_load_position(consumer);
    uint64_t producer_seen = ipcring_load_position(producer);
    check_positions(producer_seen, position, geometry.slot_count);
    /* Count the attach only now that it succeeded: a refused attach must not make the producer
     * believe that a consumer came and went (LAYOUT.md section 10). */
    __atomic_fetch_add(&roles->consumer.attach_count, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&roles->consumer.last_attach_ns, clock_ns(CLOCK_REALTIME), __ATOMIC_RELAXED);

    if (setvbuf(stdout, NULL, _IOFBF, 1 << 16) != 0) {
        fail("setting up stdout: %s", strerror(errno));
    }
    uint64_t received = 0;
    int unflushed = 0;
    int waiting = 0; /* the ring was found empty and has not been seen non-empty since */
    unsigned idle_polls = 0;
    uint64_t next_thorough_check = 0; /* CLOCK_MONOTONIC */
    while (received < count) {
        /* Acquire: pairs with the producer's release store of its position, made after it wrote
         * the slots up to it. */
        uint64_t published = ipcring_load_position(producer);
        if (published < producer_seen) {
            corrupted("producer_position", published);
        }
        check_positions(published, position, geometry.slot_count);
        producer_seen = published;
        if (position == published) {
            if (!waiting) {
                waiting = 1;
                __atomic_fetch_add(&state.stats->waits, 1, __ATOMIC_RELAXED);
            }
            if (unflushed) {
                if (fflush(stdout) != 0) {
                    fail("writing to stdout: %s", strerror(errno));
                }
                unflushed = 0;
            }
            if (++idle_polls % POLLS_PER_YIELD != 0) {
                cpu_relax();
                continue;
            }
            /* Each yield slice: is the producer gone? Its lock is tested at most once per
             * THOROUGH_CHECK_NS. */
            uint64_t now = clock_ns(CLOCK_MONOTONIC);
            int thorough = now >= next_thorough_check;
            if (thorough) {
                next_thorough_check = now + THOROUGH_CHECK_NS;
            }
            /* Position again after the check: what the producer published before it left. */
            if (producer_gone(&roles->producer, thorough) && ipcring_load_position(producer) == position) {
                fail("ring %s: the producer left after %llu of %llu messages", name, (unsigned long long)received,
                     (unsigned long long)count);
            }
            sched_yield();
            continue;
        }
        waiting = 0;
        while (position < published && received < count) {
            unsigned char *slot = slots + (position & (geometry.slot_count - 1)) * geometry.slot_stride;
            /* Read the length once: a hostile peer may rewrite it, and we use the value we checked. */
            uint32_t length = __atomic_load_n(&((struct ipcring_slot_header *)slot)->length, __ATOMIC_RELAXED);
            if (length > geometry.slot_size) {
                corrupted("slot length", length);
            }
            if (fwrite(slot + geometry.slot_payload_offset, 1, length, stdout) != length || putchar('\n') == EOF) {
                fail("writing to stdout: %s", strerror(errno));
            }
            unflushed = 1;
            position++;
            received++;
            /* Release: our reads of the slot happen before the producer, after its acquire load
             * of this position, overwrites it. */
            ipcring_store_position(consumer, position);
            wake_producer();
        }
    }
    if (fflush(stdout) != 0) {
        fail("writing to stdout: %s", strerror(errno));
    }
    release_role();
    return 0;
}
