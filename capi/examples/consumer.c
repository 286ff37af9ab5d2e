/* A consumer in C: receives from ring NAME in place (zero-copy: borrow, check, release) until
 * COUNT messages came or every producer left, waiting in poll(2) on the ring's readiness
 * descriptor (or blocking, where the ring has none). Checks every message (sequence in order,
 * payload as producer.c writes it) and prints "received N lagged L". Usage:
 *   consumer NAME spsc|mpmc|broadcast COUNT
 * Build: cc -I capi/include capi/examples/consumer.c -L target/release -lipcring */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipcring_api.h"

static int fail(const char *what, ipcring_status status) {
    fprintf(stderr, "consumer: %s: %s: %s\n", what, ipcring_status_name(status), ipcring_last_error());
    return 1;
}

/* Waits until the ring may have a message: poll its descriptor, bounded by the liveness
 * interval (a killed producer wakes nobody); without a descriptor, a blocking borrow does. */
static ipcring_status wait_for_message(ipcring_endpoint *ring, int fd) {
    int ready = 0;
    ipcring_status status = ipcring_arm(ring, &ready);
    if (status != IPCRING_OK || ready) return status;
    uint64_t interval = 0;
    ipcring_liveness_interval_ms(ring, &interval);
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    poll(&entry, 1, interval == 0 || interval > 60000 ? 60000 : (int)interval); /* EINTR: try again */
    return ipcring_disarm(ring);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: consumer NAME spsc|mpmc|broadcast COUNT\n");
        return 2;
    }
    int kind = strcmp(argv[2], "mpmc") == 0        ? IPCRING_MPMC
               : strcmp(argv[2], "broadcast") == 0 ? IPCRING_BROADCAST
                                                   : IPCRING_SPSC;
    unsigned long long count = strtoull(argv[3], NULL, 10), received = 0, expected = 0, lagged = 0;
    ipcring_endpoint *ring = NULL;
    ipcring_status status = ipcring_open(argv[1], kind, IPCRING_RECEIVER, &ring);
    if (status != IPCRING_OK) return fail("open", status);
    int fd = -1;
    uint64_t timeout = ipcring_readiness_fd(ring, &fd) == IPCRING_OK ? IPCRING_NO_WAIT : IPCRING_WAIT_FOREVER;
    printf("attached\n");
    fflush(stdout);

    static uint8_t copy[1 << 20];
    int copying = 0; /* a lossy broadcast subscriber cannot borrow in place: it receives copies */
    while (received < count) {
        const uint8_t *data = copy;
        size_t len = 0;
        status = copying ? ipcring_recv_timeout(ring, copy, sizeof copy, &len, timeout)
                         : ipcring_recv_ref(ring, timeout, &data, &len);
        if (status == IPCRING_UNSUPPORTED && !copying) {
            copying = 1;
            continue;
        }
        if (status == IPCRING_EMPTY) {
            if ((status = wait_for_message(ring, fd)) != IPCRING_OK) return fail("wait", status);
            continue;
        }
        if (status == IPCRING_LAGGED) { /* overwritten before we read them: counted, not lost silently */
            lagged += len;
            expected += len;
            continue;
        }
        if (status == IPCRING_DISCONNECTED) break;
        if (status != IPCRING_OK) return fail("recv_ref", status);
        uint64_t sequence = 0;
        for (int b = 0; b < 8 && b < (int)len; b++) sequence |= (uint64_t)data[b] << (8 * b);
        int good = len >= 8 && sequence == expected;
        for (size_t i = 8; good && i < len; i++) good = data[i] == (uint8_t)(sequence * 31 + i);
        if (!good) {
            fprintf(stderr, "consumer: message %llu is wrong (%zu bytes)\n", expected, len);
            return 1;
        }
        if (!copying && (status = ipcring_release(ring)) != IPCRING_OK) return fail("release", status);
        received++;
        expected++;
    }
    printf("received %llu lagged %llu\n", received, lagged);
    ipcring_close(ring);
    return 0;
}
