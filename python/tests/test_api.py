"""The Python API in one process: every kind, copies and zero-copy views, their lifetimes,
errors, readiness, and that blocking calls release the GIL and yield to Ctrl-C."""

import selectors
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import ipcring


@pytest.mark.parametrize("kind", ["spsc", "mpmc", "broadcast"])
def test_every_kind_sends_and_receives_bytes_like_objects(name, kind):
    tx = ipcring.Sender.create(name, kind, slots=8, slot_size=64)
    rx = ipcring.Receiver.open(name, kind)
    for data in (b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), np.arange(4, dtype=np.uint8)):
        tx.send(data, timeout=1.0)
        assert rx.recv(timeout=1.0) == bytes(data)
    assert tx.max_message_size == rx.max_message_size == 64
    assert tx.name == rx.name == name


def test_timeouts_and_errors(name):
    with pytest.raises(ipcring.NotFound):
        ipcring.Receiver.open(name)
    tx = ipcring.Sender.create(name, slots=2, slot_size=16)
    with pytest.raises(ipcring.AlreadyExists):
        ipcring.Sender.create(name)
    with pytest.raises(ipcring.Incompatible):
        ipcring.Receiver.open(name, "mpmc")
    rx = ipcring.Receiver.open(name)
    with pytest.raises(ipcring.Empty):
        rx.recv(timeout=0)
    started = time.monotonic()
    with pytest.raises(ipcring.Timeout):
        rx.recv(timeout=0.05)
    assert time.monotonic() - started >= 0.05
    with pytest.raises(ipcring.TooLarge):
        tx.send(b"x" * 17)
    tx.send(b"1")
    tx.send(b"2")
    with pytest.raises(ipcring.Full):
        tx.send(b"3", timeout=0)
    with pytest.raises(TimeoutError):  # ipcring.Timeout is a TimeoutError too
        tx.send(b"3", timeout=0.01)
    with pytest.raises(ValueError):
        rx.recv(timeout=-1)
    info = ipcring.info(name)
    assert (info["kind"], info["slot_count"], info["slot_size"], info["used"]) == ("spsc", 2, 16, 2)


def test_the_last_message_then_disconnected(name):
    tx = ipcring.Sender.create(name)
    rx = ipcring.Receiver.open(name)
    tx.send(b"last")
    del tx
    assert rx.recv(timeout=1.0) == b"last"
    with pytest.raises(ipcring.Disconnected):
        rx.recv(timeout=5.0)


def test_reserve_writes_in_place_and_commit_publishes(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=32)
    rx = ipcring.Receiver.open(name)
    view = tx.reserve()
    assert len(view) == 32 and not view.readonly
    view[:5] = b"hello"
    with pytest.raises(ipcring.Unsupported):  # nothing else while a reservation is open
        tx.send(b"x")
    tx.commit(5)
    assert rx.recv(timeout=1.0) == b"hello"
    with pytest.raises(ValueError):  # the view was released by the commit
        view[0] = 1
    view = tx.reserve()
    view[:1] = b"?"
    tx.abort()
    with pytest.raises(ipcring.Empty):
        rx.recv(timeout=0)


def test_commit_with_a_numpy_array_of_the_slot_raises_and_keeps_the_slot(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=64)
    rx = ipcring.Receiver.open(name)
    array = np.frombuffer(tx.reserve(), dtype=np.uint64)  # writable, in the slot, no copy
    array[:] = np.arange(8, dtype=np.uint64)
    with pytest.raises(BufferError):
        tx.commit(64)
    del array
    tx.commit(64)
    assert np.array_equal(np.frombuffer(rx.recv(timeout=1.0), dtype=np.uint64), np.arange(8, dtype=np.uint64))


def test_a_borrowed_message_is_a_read_only_view_in_place(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=64)
    rx = ipcring.Receiver.open(name)
    tx.send(np.arange(8, dtype=np.uint64))
    tx.send(b"second")
    message = rx.recv_ref(timeout=1.0)
    view = message.view
    assert view.readonly and len(message) == 64
    array = np.frombuffer(view, dtype=np.uint64)  # no copy: it holds a buffer of the slot
    assert array.tolist() == list(range(8))
    with pytest.raises(BufferError):  # the array still reads the slot: it is kept
        message.release()
    with pytest.raises(ipcring.Unsupported):  # nothing else while it is borrowed
        rx.recv(timeout=0)
    del array
    message.release()
    with pytest.raises(ValueError):  # a view used after the release raises, never crashes
        bytes(view)
    with pytest.raises(ipcring.Unsupported):
        message.view
    with rx.recv_ref(timeout=1.0) as view:  # the slot kept above was released, not lost
        assert bytes(view) == b"second"
    with pytest.raises(ValueError):
        view[0]


def test_broadcast_fans_out_and_a_lossy_subscriber_counts_what_it_missed(name):
    publisher = ipcring.Sender.create(name, "broadcast", slots=8, slot_size=16, overflow="overwrite")
    first = ipcring.Receiver.open(name, "broadcast")
    second = ipcring.Receiver.open(name, "broadcast")
    for n in range(20):
        publisher.send(n.to_bytes(4, "little"))
    for subscriber in (first, second):
        with pytest.raises(ipcring.Lagged) as lagged:
            subscriber.recv(timeout=1.0)
        assert lagged.value.count == 12
        assert subscriber.lagged == 12
        assert [int.from_bytes(subscriber.recv(timeout=1.0), "little") for _ in range(8)] == list(range(12, 20))
    with pytest.raises(ipcring.Unsupported):  # under overwrite a slot may change while read
        first.recv_ref(timeout=0)


def test_the_readiness_descriptor_works_with_selectors(name):
    tx = ipcring.Sender.create(name)
    rx = ipcring.Receiver.open(name)
    try:
        fd = rx.fileno()
    except ipcring.Unsupported:
        pytest.skip("no readiness here (neither io_uring nor futex_waitv)")
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    assert rx.arm() is False  # empty: wait for the descriptor
    assert selector.select(timeout=0.05) == []
    tx.send(b"wake")
    assert selector.select(timeout=5.0), "the descriptor never became readable"
    rx.disarm()
    assert rx.recv(timeout=0) == b"wake"
    assert 0 < rx.liveness_interval <= 1.0


def test_a_blocked_receive_releases_the_gil(name):
    tx = ipcring.Sender.create(name)
    rx = ipcring.Receiver.open(name)
    got = []
    receiver = threading.Thread(target=lambda: got.append(rx.recv(timeout=10.0)))
    receiver.start()
    # This thread runs while the other is blocked in recv (it would not, were the GIL held).
    time.sleep(0.05)  # SLEEP-OK: lets the receiver block first; the send below works either way
    tx.send(b"from another thread")
    receiver.join(timeout=10.0)
    assert got == [b"from another thread"]


def test_ctrl_c_interrupts_a_blocked_receive(name):
    ipcring.Sender.create(name)  # the ring exists while the child waits on it
    sender = ipcring.Sender.open(name)
    child = subprocess.Popen(
        [sys.executable, "-c", f"import ipcring; r = ipcring.Receiver.open({name!r}); print('waiting', flush=True); r.recv()"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.1)  # SLEEP-OK: the child is inside recv by now; a signal before that is handled too
    child.send_signal(signal.SIGINT)
    _, errors = child.communicate(timeout=10.0)
    assert child.returncode != 0 and "KeyboardInterrupt" in errors, errors
    del sender


def test_a_commit_larger_than_the_slot_is_refused_and_the_reservation_stays(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=16)
    rx = ipcring.Receiver.open(name)
    view = tx.reserve()
    view[:2] = b"ok"
    with pytest.raises(ipcring.TooLarge):
        tx.commit(17)
    tx.commit(2)  # the same reservation, still open and usable
    assert rx.recv(timeout=1.0) == b"ok"


def test_a_refused_release_keeps_the_slot_and_gives_a_fresh_view(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=16)
    rx = ipcring.Receiver.open(name)
    tx.send(b"kept")
    tx.send(b"next")
    message = rx.recv_ref(timeout=1.0)
    part = message.view[:2]  # a slice shares the exporter: the slot is in use
    with pytest.raises(BufferError):
        message.release()
    assert bytes(part) == b"ke"
    assert bytes(message.view) == b"kept"  # a live view of the kept slot
    del part
    message.release()
    assert rx.recv(timeout=1.0) == b"next"


def test_numpy_ndarray_over_a_view_holds_the_slot(name):
    # numpy's ndarray(buffer=...) keeps the exporter without an export: still refused.
    tx = ipcring.Sender.create(name, slots=4, slot_size=64)
    array = np.ndarray((8,), dtype=np.uint64, buffer=tx.reserve())
    array[:] = 7
    with pytest.raises(BufferError):
        tx.commit(64)
    del array
    tx.commit(64)


def test_a_message_dropped_without_release_is_released_by_the_next_call(name):
    tx = ipcring.Sender.create(name, slots=4, slot_size=16)
    rx = ipcring.Receiver.open(name)
    for data in (b"one", b"two", b"three"):
        tx.send(data)
    assert rx.recv_ref(timeout=1.0).view.tobytes() == b"one"  # the Message is dropped at once
    with pytest.raises(BufferError):  # the block's exit cannot release: the array is alive
        with rx.recv_ref(timeout=1.0) as view:
            array = np.frombuffer(view, dtype=np.uint8)
            raise RuntimeError("inside the block")
    assert bytes(array) == b"two"  # still readable: the slot was kept
    del array
    assert rx.recv(timeout=1.0) == b"three"  # neither stuck nor delivered twice


def test_a_reference_to_the_exporter_holds_the_slot_and_a_closed_one_exports_nothing(name):
    tx = ipcring.Sender.create(name)
    view = tx.reserve()
    exporter = view.obj  # memoryview(exporter) could reach the slot at any time
    with pytest.raises(BufferError):
        tx.abort()
    stale = tx.view.obj
    del exporter
    with pytest.raises(BufferError):
        tx.abort()  # `stale` is the same exporter
    del stale
    tx.abort()
    with pytest.raises(ValueError):
        view[0] = 1


def test_odd_timeouts(name):
    tx = ipcring.Sender.create(name, slots=2, slot_size=8)
    rx = ipcring.Receiver.open(name)
    tx.send(b"a", timeout=float("inf"))  # infinity: no limit
    tx.send(b"b", timeout=1e300)
    assert rx.recv(timeout=float("inf")) == b"a"
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError):
            rx.recv(timeout=bad)
    with pytest.raises(ValueError):
        ipcring.Sender.create(name + "-x", liveness_interval=float("inf"))


def test_a_strided_array_is_refused_and_two_threads_are_not_allowed_at_once(name):
    tx = ipcring.Sender.create(name, slots=2, slot_size=64)
    rx = ipcring.Receiver.open(name)
    with pytest.raises(TypeError):
        tx.send(np.arange(16, dtype=np.uint8)[::2])  # not contiguous: not bytes-like
    def wait_in_recv():
        while True:
            try:
                rx.recv(timeout=5.0)
            except ipcring.Timeout:
                return
            except RuntimeError:  # the main thread's try held the endpoint that instant
                continue

    blocked = threading.Thread(target=wait_in_recv)
    blocked.start()
    # Until the other thread is inside recv (Empty before that), then refused: never a wait.
    deadline = time.monotonic() + 4.0
    while True:
        try:
            rx.recv(timeout=0)
        except ipcring.Empty:
            assert time.monotonic() < deadline, "the other thread never got inside recv"
            continue
        except RuntimeError:
            break
    blocked.join(timeout=10.0)


@pytest.mark.parametrize("kind", ["spsc", "mpmc", "broadcast"])
@pytest.mark.parametrize("wait", ["futex", "spin", "semaphore", "mutex", "membarrier"])
def test_every_kind_with_every_wait_strategy(name, kind, wait):
    if kind == "broadcast" and wait in ("semaphore", "mutex"):
        with pytest.raises(ipcring.InvalidArgument):  # one token per slot cannot count readers
            ipcring.Sender.create(name, kind, wait=wait)
        return
    try:
        tx = ipcring.Sender.create(name, kind, slots=4, slot_size=16, wait=wait)
    except ipcring.Unsupported as refused:  # membarrier where the kernel refuses it
        pytest.skip(str(refused))
    rx = ipcring.Receiver.open(name, kind)
    assert ipcring.info(name)["wait"] == wait
    tx.send(b"through " + wait.encode()[:8], timeout=5.0)
    assert rx.recv(timeout=5.0) == b"through " + wait.encode()[:8]
    with pytest.raises(ipcring.Timeout):
        rx.recv(timeout=0.01)  # a timed wait of this strategy
