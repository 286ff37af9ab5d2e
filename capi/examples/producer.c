/* A producer in C: sends COUNT checksummed messages of SIZE bytes into ring NAME, written in
 * place (zero-copy: reserve, write, commit), then leaves. Usage:
 *   producer NAME spsc|mpmc|broadcast COUNT SIZE
 * Message n: its sequence number (8 bytes, little-endian), then bytes (n * 31 + i) & 0xff.
 * Build: cc -I capi/include capi/examples/producer.c -L target/release -lipcring */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipcring_api.h"

static int fail(const char *what, ipcring_status status) {
    fprintf(stderr, "producer: %s: %s: %s\n", what, ipcring_status_name(status), ipcring_last_error());
    return 1;
}

static int kind_of(const char *name) {
    if (strcmp(name, "mpmc") == 0) return IPCRING_MPMC;
    if (strcmp(name, "broadcast") == 0) return IPCRING_BROADCAST;
    return IPCRING_SPSC;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: producer NAME spsc|mpmc|broadcast COUNT SIZE\n");
        return 2;
    }
    const char *name = argv[1];
    unsigned long long count = strtoull(argv[3], NULL, 10);
    size_t size = (size_t)strtoull(argv[4], NULL, 10);
    if (size < 8) size = 8;

    ipcring_options options = {0};
    options.slots = 256;
    options.slot_size = (uint32_t)size;
    ipcring_endpoint *ring = NULL; /* an existing ring as it is, else a new one for SIZE */
    ipcring_status status = ipcring_open(name, kind_of(argv[2]), IPCRING_SENDER, &ring);
    if (status == IPCRING_NOT_FOUND)
        status = ipcring_create(name, kind_of(argv[2]), IPCRING_SENDER, &options, &ring);
    if (status != IPCRING_OK) return fail("attach", status);
    printf("attached\n");
    fflush(stdout);

    for (unsigned long long n = 0; n < count; n++) {
        uint8_t *slot = NULL;
        size_t capacity = 0;
        status = ipcring_reserve(ring, IPCRING_WAIT_FOREVER, &slot, &capacity);
        if (status != IPCRING_OK) return fail("reserve", status);
        if (capacity < size) {
            fprintf(stderr, "producer: the ring's slots hold %zu bytes, not %zu\n", capacity, size);
            return 1;
        }
        for (int b = 0; b < 8; b++) slot[b] = (uint8_t)(n >> (8 * b));
        for (size_t i = 8; i < size; i++) slot[i] = (uint8_t)(n * 31 + i);
        status = ipcring_commit(ring, size);
        if (status != IPCRING_OK) return fail("commit", status);
    }
    printf("sent %llu\n", count);
    ipcring_close(ring);
    return 0;
}
