/*
 * consumer: the consumer side of an ipcring SPSC ring, in C, from shm-layout/LAYOUT.md alone.
 *
 *     consumer NAME --count N
 *
 * Attaches to the ring NAME (validating the segment as the Rust side does), claims the consumer
 * role, prints the next N messages to stdout, one per line (payload, then '\n'), releases the
 * role and exits 0. Errors: one line on stderr, exit 1; usage errors exit 2.
 *
 * It busy-polls for messages (never sleeps on the futex), but wakes a sleeping producer exactly
 * as the Rust side does, so it works under both wait strategies.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o consumer consumer.c   (tests/c_consumer.rs)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../ipcring.h"

#define PROGRAM "consumer"
#define USAGE "usage: consumer NAME --count N"
/* Longest ring name without the leading '/', as in src/segment.rs. */
#define MAX_NAME_LEN 200
/* Empty polls between two sched_yield calls: on a 2-core machine the producer needs the CPU. */
#define POLLS_PER_YIELD 128u

/* The validated, process-local geometry: never re-read from the shared header. */
struct geometry {
    uint32_t wait_strategy;
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
    uint64_t *claim; /* non-NULL while this process holds the consumer role */
    uint64_t me;
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

static uint64_t now_ns(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
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

/* ---- Liveness: mirrors ipcring::process::claim_is_alive -------------------------------- */

/* Reads state (field 3) and start time (field 22) of /proc/PID/stat; 0 if unavailable. */
static int read_stat(uint32_t pid, char *process_state, unsigned long long *start_time) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        return 0;
    }
    char text[1024];
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    /* The command name (field 2) is in parentheses and may itself contain spaces and ')'. */
    char *cursor = strrchr(text, ')');
    if (cursor == NULL) {
        return 0;
    }
    cursor++;
    for (int field = 3; field <= 22; field++) {
        while (*cursor == ' ') {
            cursor++;
        }
        if (*cursor == '\0' || *cursor == '\n') {
            return 0;
        }
        if (field == 3) {
            *process_state = *cursor;
        } else if (field == 22) {
            char *end = NULL;
            *start_time = strtoull(cursor, &end, 10);
            return end != cursor;
        }
        while (*cursor != ' ' && *cursor != '\0') {
            cursor++;
        }
    }
    return 0;
}

/* True if the process that wrote `claim` still runs. A zombie is dead: it will never touch the
 * ring again. A claim with a start time must also match the process's start time, which tells
 * the holder from an unrelated process that got its pid later. */
static int claim_is_alive(uint64_t claim) {
    uint32_t pid = IPCRING_CLAIM_PID(claim);
    uint32_t start = IPCRING_CLAIM_START_TIME(claim);
    if (pid == 0 || pid > INT_MAX) {
        return 0;
    }
    char process_state = 0;
    unsigned long long start_time = 0;
    if (read_stat(pid, &process_state, &start_time)) {
        int dead = process_state == 'Z' || process_state == 'X';
        return !dead && (start == 0 || (uint32_t)start_time == start);
    }
    if (access("/proc/self/stat", F_OK) == 0) {
        return 0; /* /proc works, and has no such process */
    }
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
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
        fail("ring %s: layout version %u is not supported by this build (it reads version %u); use a consumer "
             "of the same version as the creator",
             state.name, header->layout_version, IPCRING_LAYOUT_VERSION);
    }
    if (header->header_size != IPCRING_HEADER_SIZE) {
        corrupted("header_size", header->header_size);
    }
    uint32_t unknown = header->incompatible_features & ~IPCRING_KNOWN_INCOMPATIBLE_FEATURES;
    if (unknown != 0) {
        fail("ring %s uses incompatible features 0x%x unknown to this build; upgrade", state.name, unknown);
    }
    if (header->ring_kind != IPCRING_RING_KIND_SPSC) {
        corrupted("ring_kind", header->ring_kind);
    }
    if (header->wait_strategy != IPCRING_WAIT_FUTEX && header->wait_strategy != IPCRING_WAIT_SPIN) {
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
    geometry->slot_count = slot_count;
    geometry->slot_size = header->slot_size;
    geometry->slot_stride = stride;
    geometry->slot_payload_offset = payload_offset;
    geometry->slots_offset = header->slots_offset;
}

/* ---- Roles and wakeups ------------------------------------------------------------------ */

/* The waker's half of the eventcount on "not full", under the futex strategy only. */
static void wake_producer(void) {
    if (state.wait_strategy != IPCRING_WAIT_FUTEX || !ipcring_eventcount_prepare_wake(state.not_full)) {
        return;
    }
    /* Shared futex (no FUTEX_PRIVATE_FLAG): the sleeper is another process. */
    syscall(SYS_futex, &state.not_full->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    __atomic_fetch_add(&state.stats->futex_wakes, 1, __ATOMIC_RELAXED);
}

static void claim_role(struct ipcring_role_record *record, struct ipcring_wait_block *not_empty) {
    uint64_t me = IPCRING_CLAIM(getpid(), 0); /* pid-only claim: no start time */
    /* Acquire: pairs with the release in a previous holder's release_role, so what it
     * published (its consumer position) is visible. */
    uint64_t current = __atomic_load_n(&record->claim, __ATOMIC_ACQUIRE);
    for (;;) {
        if (current != 0 && (current == me || claim_is_alive(current))) {
            fail("ring %s: the consumer role is taken by live process %u; at most one consumer may attach",
                 state.name, IPCRING_CLAIM_PID(current));
        }
        /* Vacant, or the holder is dead: take the role over. On failure `current` is reloaded. */
        if (__atomic_compare_exchange_n(&record->claim, &current, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            break;
        }
    }
    state.claim = &record->claim;
    state.me = me;
    /* Only the consumer sleeps on "not empty": registrations left there belong to a dead
     * predecessor and would only cost the producer useless wake calls. */
    __atomic_store_n(&not_empty->waiters, 0u, __ATOMIC_RELAXED);
}

static void release_role(void) {
    if (state.claim == NULL) {
        return;
    }
    uint64_t expected = state.me;
    /* Release: pairs with the acquire loads of the claim by the next claimer and by the
     * producer's peer check. If another process took the role over (it thought us dead), its
     * claim stays. */
    __atomic_compare_exchange_n(state.claim, &expected, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    state.claim = NULL;
    /* A producer blocked on a full ring must notice that its consumer left. */
    wake_producer();
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

    /* Segment::open_with: open, check the file, map, then validate the header. */
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
    unsigned char *base = mmap(NULL, (size_t)file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED) {
        fail("mapping ring %s: %s", name, strerror(errno));
    }
    close(fd);

    /* Acquire: pairs with the creator's release store of the magic, made after the rest of the
     * header: seeing the magic means seeing the whole header. Then one private copy, which is
     * all this process ever trusts (a peer may rewrite the shared header later). */
    uint64_t magic = ipcring_load_magic((const struct ipcring_header *)base);
    struct ipcring_header header;
    const volatile unsigned char *source = base;
    unsigned char *copy = (unsigned char *)&header;
    for (size_t i = 0; i < sizeof header; i++) {
        copy[i] = source[i];
    }
    header.magic = magic;
    struct geometry geometry;
    validate(&header, file_size, &geometry);
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

    claim_role(&roles->consumer, not_empty);
    /* Positions are read only after the claim: a predecessor may have released until then. */
    uint64_t position = ipcring_load_position(consumer);
    uint64_t producer_seen = ipcring_load_position(producer);
    check_positions(producer_seen, position, geometry.slot_count);
    /* Count the attach only now that it succeeded: a refused attach must not make the producer
     * believe that a consumer came and went (LAYOUT.md section 10). */
    __atomic_fetch_add(&roles->consumer.attach_count, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&roles->consumer.last_attach_ns, now_ns(), __ATOMIC_RELAXED);

    if (setvbuf(stdout, NULL, _IOFBF, 1 << 16) != 0) {
        fail("setting up stdout: %s", strerror(errno));
    }
    uint64_t received = 0;
    int unflushed = 0;
    int waiting = 0; /* the ring was found empty and has not been seen non-empty since */
    unsigned idle_polls = 0;
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
            if (++idle_polls % POLLS_PER_YIELD == 0) {
                sched_yield();
            } else {
                cpu_relax();
            }
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
