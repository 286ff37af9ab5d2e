/* The C API checked from C, in one process: every call of ipcring_api.h on rings of each kind,
 * its status codes and messages, null pointers, and the lossy broadcast's lag count. Built and
 * run by capi/tests/c_examples.rs (exit status 0: every check passed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipcring_api.h"

static int failures = 0;
#define CHECK(condition)                                                                           \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__,     \
                    #condition, ipcring_last_error());                                             \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    char name[64], other[80];
    snprintf(name, sizeof name, "%s-capi-%d", argc > 1 ? argv[1] : "ipcring-test", (int)getpid());
    snprintf(other, sizeof other, "%s-b", name);
    ipcring_options options = {0};
    options.slots = 8;
    options.slot_size = 64;
    ipcring_endpoint *tx = NULL, *rx = NULL;

    /* Null pointers and bad values are refused, never crash. */
    CHECK(ipcring_create(NULL, IPCRING_SPSC, IPCRING_SENDER, &options, &tx) == IPCRING_INVALID_ARGUMENT);
    CHECK(ipcring_create(name, IPCRING_SPSC, IPCRING_SENDER, &options, NULL) == IPCRING_INVALID_ARGUMENT);
    CHECK(ipcring_create(name, 7, IPCRING_SENDER, &options, &tx) == IPCRING_INVALID_ARGUMENT);
    CHECK(ipcring_send(NULL, (const uint8_t *)"x", 1) == IPCRING_INVALID_ARGUMENT);
    CHECK(strstr(ipcring_last_error(), "null") != NULL);
    CHECK(ipcring_open(name, IPCRING_SPSC, IPCRING_RECEIVER, &rx) == IPCRING_NOT_FOUND);
    CHECK(strcmp(ipcring_status_name(IPCRING_NOT_FOUND), "IPCRING_NOT_FOUND") == 0);

    /* SPSC: copy, try, timed, buffer too small (the message stays), wrong side, info. */
    CHECK(ipcring_create(name, IPCRING_SPSC, IPCRING_SENDER, &options, &tx) == IPCRING_OK);
    CHECK(ipcring_create(name, IPCRING_SPSC, IPCRING_SENDER, &options, &rx) == IPCRING_ALREADY_EXISTS);
    CHECK(ipcring_open(name, IPCRING_MPMC, IPCRING_RECEIVER, &rx) == IPCRING_INCOMPATIBLE);
    CHECK(ipcring_open(name, IPCRING_SPSC, IPCRING_RECEIVER, &rx) == IPCRING_OK);
    uint8_t buffer[64];
    size_t len = 99;
    CHECK(ipcring_try_recv(rx, buffer, sizeof buffer, &len) == IPCRING_EMPTY && len == 0);
    CHECK(ipcring_recv_timeout(rx, buffer, sizeof buffer, &len, 1000000) == IPCRING_TIMEOUT);
    CHECK(ipcring_send(rx, (const uint8_t *)"x", 1) == IPCRING_UNSUPPORTED);
    CHECK(ipcring_send(tx, (const uint8_t *)"hello, ring", 11) == IPCRING_OK);
    CHECK(ipcring_recv(rx, buffer, 4, &len) == IPCRING_BUFFER_TOO_SMALL && len == 11);
    CHECK(ipcring_recv(rx, buffer, sizeof buffer, &len) == IPCRING_OK && len == 11);
    CHECK(memcmp(buffer, "hello, ring", 11) == 0);
    uint8_t big[65] = {0};
    CHECK(ipcring_send(tx, big, sizeof big) == IPCRING_TOO_LARGE);
    size_t max = 0;
    CHECK(ipcring_max_message_size(tx, &max) == IPCRING_OK && max == 64);
    for (int i = 0; i < 8; i++) CHECK(ipcring_try_send(tx, (const uint8_t *)&i, sizeof i) == IPCRING_OK);
    CHECK(ipcring_try_send(tx, (const uint8_t *)"full", 4) == IPCRING_FULL);
    CHECK(ipcring_send_timeout(tx, (const uint8_t *)"full", 4, 1000000) == IPCRING_TIMEOUT);
    ipcring_info info;
    CHECK(ipcring_ring_info(name, &info) == IPCRING_OK);
    CHECK(info.kind == IPCRING_SPSC && info.slot_count == 8 && info.slot_size == 64 && info.used == 8);

    /* Batches: borrow up to 5, read them in place, release together. */
    size_t count = 0;
    CHECK(ipcring_recv_batch(rx, 5, IPCRING_NO_WAIT, &count) == IPCRING_OK && count == 5);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *data = NULL;
        int value = -1;
        CHECK(ipcring_batch_get(rx, i, &data, &len) == IPCRING_OK && len == sizeof value);
        memcpy(&value, data, sizeof value);
        CHECK(value == (int)i);
    }
    const uint8_t *nowhere = NULL;
    CHECK(ipcring_batch_get(rx, 5, &nowhere, &len) == IPCRING_INVALID_ARGUMENT);
    CHECK(ipcring_try_recv(rx, buffer, sizeof buffer, &len) == IPCRING_UNSUPPORTED); /* the batch is open */
    CHECK(ipcring_release(rx) == IPCRING_OK);
    CHECK(ipcring_release(rx) == IPCRING_UNSUPPORTED);
    CHECK(ipcring_recv_batch(rx, 16, IPCRING_NO_WAIT, &count) == IPCRING_OK && count == 3);
    CHECK(ipcring_release(rx) == IPCRING_OK);
    CHECK(ipcring_recv_batch(rx, 0, IPCRING_NO_WAIT, &count) == IPCRING_INVALID_ARGUMENT);
    ipcring_message batch[3] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"bb", 2}, {(const uint8_t *)"ccc", 3}};
    size_t sent = 0;
    for (int i = 0; i < 6; i++) CHECK(ipcring_try_send(tx, (const uint8_t *)"f", 1) == IPCRING_OK);
    CHECK(ipcring_send_batch(tx, batch, 3, IPCRING_NO_WAIT, &sent) == IPCRING_OK && sent == 2); /* room for 2 */
    CHECK(ipcring_send_batch(tx, batch, 3, IPCRING_NO_WAIT, &sent) == IPCRING_FULL && sent == 0);
    CHECK(ipcring_send_batch(tx, batch + 2, 1, 1000000, &sent) == IPCRING_TIMEOUT && sent == 0);
    CHECK(ipcring_recv_batch(rx, 8, IPCRING_NO_WAIT, &count) == IPCRING_OK && count == 8);
    CHECK(ipcring_release(rx) == IPCRING_OK);
    CHECK(ipcring_send_batch(tx, batch, 3, IPCRING_WAIT_FOREVER, &sent) == IPCRING_OK && sent == 3);

    /* Zero-copy: reserve (nothing else works meanwhile), abort, reserve, commit; borrow. */
    uint8_t *slot = NULL;
    size_t capacity = 0;
    CHECK(ipcring_reserve(tx, IPCRING_NO_WAIT, &slot, &capacity) == IPCRING_OK && capacity == 64);
    CHECK(ipcring_send(tx, (const uint8_t *)"x", 1) == IPCRING_UNSUPPORTED);
    CHECK(ipcring_abort(tx) == IPCRING_OK);
    CHECK(ipcring_commit(tx, 1) == IPCRING_UNSUPPORTED);
    CHECK(ipcring_reserve(tx, IPCRING_NO_WAIT, &slot, &capacity) == IPCRING_OK);
    memcpy(slot, "in place", 8);
    CHECK(ipcring_commit(tx, 65) == IPCRING_TOO_LARGE); /* refused: the reservation stays open */
    CHECK(ipcring_commit(tx, 8) == IPCRING_OK);
    const uint8_t *data = NULL;
    for (int i = 1; i <= 3; i++) {
        CHECK(ipcring_recv_ref(rx, IPCRING_NO_WAIT, &data, &len) == IPCRING_OK && len == (size_t)i);
        CHECK(ipcring_release(rx) == IPCRING_OK);
    }
    CHECK(ipcring_recv_ref(rx, IPCRING_NO_WAIT, &data, &len) == IPCRING_OK && len == 8);
    CHECK(memcmp(data, "in place", 8) == 0);
    CHECK(ipcring_release(rx) == IPCRING_OK);

    /* A message kept by a too small buffer comes next, borrowed or copied; never twice. */
    CHECK(ipcring_send(tx, (const uint8_t *)"kept for later", 14) == IPCRING_OK);
    CHECK(ipcring_send(tx, (const uint8_t *)"after", 5) == IPCRING_OK);
    CHECK(ipcring_try_recv(rx, buffer, 2, &len) == IPCRING_BUFFER_TOO_SMALL && len == 14);
    CHECK(ipcring_recv_ref(rx, IPCRING_NO_WAIT, &data, &len) == IPCRING_OK && len == 14);
    CHECK(ipcring_try_recv(rx, buffer, sizeof buffer, &len) == IPCRING_UNSUPPORTED); /* it is borrowed */
    CHECK(memcmp(data, "kept for later", 14) == 0);
    CHECK(ipcring_release(rx) == IPCRING_OK);
    CHECK(ipcring_try_recv(rx, buffer, sizeof buffer, &len) == IPCRING_OK && len == 5 && memcmp(buffer, "after", 5) == 0);

    /* Readiness: armed on an empty ring it waits; a send makes it ready. */
    int fd = -1, ready = -1;
    ipcring_status readiness = ipcring_readiness_fd(rx, &fd);
    CHECK(readiness == IPCRING_OK || readiness == IPCRING_UNSUPPORTED);
    if (readiness == IPCRING_OK) {
        CHECK(fd >= 0 && ipcring_arm(rx, &ready) == IPCRING_OK && ready == 0);
        CHECK(ipcring_disarm(rx) == IPCRING_OK);
        CHECK(ipcring_send(tx, (const uint8_t *)"!", 1) == IPCRING_OK);
        CHECK(ipcring_arm(rx, &ready) == IPCRING_OK && ready == 1);
    }
    uint64_t interval = 0;
    CHECK(ipcring_liveness_interval_ms(rx, &interval) == IPCRING_OK && interval > 0);

    /* The sender leaves: what it sent still arrives, then IPCRING_DISCONNECTED. */
    ipcring_close(tx);
    if (readiness == IPCRING_OK) CHECK(ipcring_recv(rx, buffer, sizeof buffer, &len) == IPCRING_OK && len == 1);
    CHECK(ipcring_recv(rx, buffer, sizeof buffer, &len) == IPCRING_DISCONNECTED);
    ipcring_close(rx);
    CHECK(ipcring_remove(name) == IPCRING_OK);
    CHECK(ipcring_remove(name) == IPCRING_NOT_FOUND);

    /* Broadcast, lossy: a subscriber that does not keep up lags, and the loss is counted. */
    options.overflow = IPCRING_OVERFLOW_OVERWRITE;
    ipcring_endpoint *publisher = NULL, *subscriber = NULL;
    CHECK(ipcring_create(other, IPCRING_BROADCAST, IPCRING_SENDER, &options, &publisher) == IPCRING_OK);
    CHECK(ipcring_open(other, IPCRING_BROADCAST, IPCRING_RECEIVER, &subscriber) == IPCRING_OK);
    CHECK(ipcring_recv_ref(subscriber, IPCRING_NO_WAIT, &data, &len) == IPCRING_UNSUPPORTED); /* copies only */
    CHECK(strstr(ipcring_last_error(), "overwrite") != NULL);
    for (uint32_t i = 0; i < 20; i++) CHECK(ipcring_send(publisher, (const uint8_t *)&i, sizeof i) == IPCRING_OK);
    CHECK(ipcring_recv(subscriber, buffer, sizeof buffer, &len) == IPCRING_LAGGED && len == 12);
    uint64_t missed = 0;
    CHECK(ipcring_lagged(subscriber, &missed) == IPCRING_OK && missed == 12);
    uint32_t first = 0;
    CHECK(ipcring_recv(subscriber, buffer, sizeof buffer, &len) == IPCRING_OK && len == sizeof first);
    memcpy(&first, buffer, sizeof first);
    CHECK(first == 12);
    ipcring_close(subscriber);
    ipcring_close(publisher);
    CHECK(ipcring_remove(other) == IPCRING_OK);
    ipcring_close(NULL);

    /* Every kind with every wait strategy: a message through, a timed wait. */
    for (int kind = IPCRING_SPSC; kind <= IPCRING_BROADCAST; kind++) {
        for (uint32_t wait = IPCRING_WAIT_FUTEX; wait <= IPCRING_WAIT_MEMBARRIER; wait++) {
            ipcring_options each = {0};
            each.slots = 4;
            each.slot_size = 16;
            each.wait = wait;
            ipcring_status made = ipcring_create(other, kind, IPCRING_SENDER, &each, &tx);
            if (kind == IPCRING_BROADCAST && (wait == IPCRING_WAIT_SEMAPHORE || wait == IPCRING_WAIT_MUTEX)) {
                CHECK(made == IPCRING_INVALID_ARGUMENT && tx == NULL); /* cannot count several readers */
                continue;
            }
            if (made == IPCRING_UNSUPPORTED && wait == IPCRING_WAIT_MEMBARRIER) continue; /* refused by the kernel */
            CHECK(made == IPCRING_OK);
            if (made != IPCRING_OK) continue;
            CHECK(ipcring_open(other, kind, IPCRING_RECEIVER, &rx) == IPCRING_OK);
            CHECK(ipcring_ring_info(other, &info) == IPCRING_OK && info.wait == wait);
            CHECK(ipcring_send_timeout(tx, (const uint8_t *)"w", 1, 1000000000) == IPCRING_OK);
            CHECK(ipcring_recv_timeout(rx, buffer, sizeof buffer, &len, 1000000000) == IPCRING_OK && len == 1);
            CHECK(ipcring_recv_timeout(rx, buffer, sizeof buffer, &len, 1000000) == IPCRING_TIMEOUT);
            ipcring_close(rx);
            ipcring_close(tx);
            CHECK(ipcring_remove(other) == IPCRING_OK);
        }
    }

    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
