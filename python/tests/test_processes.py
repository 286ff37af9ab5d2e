"""Python against Rust and C peers in other processes: 1,000,000 checksummed messages each way,
zero-copy on the Python side, and a killed peer seen as Disconnected."""

import numpy as np
import pytest

import ipcring
from conftest import Peer, pattern

MESSAGES = 1_000_000
SIZE = 64


def produce(sender, count, size):
    """Writes message n of the pattern in place, for every n (zero-copy)."""
    for n in range(count):
        view = sender.reserve(timeout=60.0)
        view[:size] = pattern(n, size)
        sender.commit(size)


def consume(receiver, count):
    """Receives count messages, checking each against the pattern; returns how many came."""
    for n in range(count):
        message = receiver.recv(timeout=60.0)
        if message != pattern(n, len(message)):
            raise AssertionError(f"message {n} is wrong: {message[:16]!r}...")
    return count


@pytest.mark.parametrize("kind", ["spsc", "mpmc", "broadcast"])
def test_a_million_messages_from_python_to_rust(name, kind, rust_peer):
    sender = ipcring.Sender.create(name, kind, slots=1024, slot_size=SIZE)
    consumer = Peer([rust_peer, "consume", name, kind, MESSAGES])
    consumer.expect("attached")
    produce(sender, MESSAGES, SIZE)
    del sender
    assert consumer.expect("received") == str(MESSAGES)
    consumer.finish()


@pytest.mark.parametrize("kind", ["spsc", "mpmc", "broadcast"])
def test_a_million_messages_from_rust_to_python(name, kind, rust_peer):
    receiver = ipcring.Receiver.create(name, kind, slots=1024, slot_size=SIZE)
    producer = Peer([rust_peer, "produce", name, kind, MESSAGES, SIZE])
    assert consume(receiver, MESSAGES) == MESSAGES
    producer.expect("attached")
    assert producer.expect("sent") == str(MESSAGES)
    producer.finish()
    with pytest.raises(ipcring.Disconnected):
        receiver.recv(timeout=10.0)


def test_a_million_messages_from_python_to_c(name, c_peers):
    sender = ipcring.Sender.create(name, "spsc", slots=1024, slot_size=SIZE)
    consumer = Peer([c_peers["consumer"], name, "spsc", MESSAGES])
    consumer.expect("attached")
    for n in range(MESSAGES):
        sender.send(pattern(n, SIZE), timeout=60.0)
    assert consumer.expect("received") == f"{MESSAGES} lagged 0"
    consumer.finish()


def test_a_million_messages_from_c_to_python_borrowed_in_place(name, c_peers):
    receiver = ipcring.Receiver.create(name, "mpmc", slots=1024, slot_size=SIZE)
    producer = Peer([c_peers["producer"], name, "mpmc", MESSAGES, SIZE])
    for n in range(MESSAGES):
        with receiver.recv_ref(timeout=60.0) as view:
            if view != pattern(n, SIZE):
                raise AssertionError(f"message {n} is wrong")
    producer.expect("attached")
    assert producer.expect("sent") == str(MESSAGES)
    producer.finish()


@pytest.mark.parametrize("peer", ["rust", "c"])
def test_a_killed_producer_gives_disconnected(name, peer, rust_peer, c_peers):
    receiver = ipcring.Receiver.create(name, "spsc", slots=64, slot_size=SIZE, liveness_interval=0.1)
    args = [rust_peer, "produce", name, "spsc", 10**9, SIZE] if peer == "rust" else [c_peers["producer"], name, "spsc", 10**9, SIZE]
    producer = Peer(args)
    producer.expect("attached")
    received = consume(receiver, 1000)  # it is streaming
    producer.kill()
    with pytest.raises(ipcring.Disconnected):
        while True:  # what was committed before the kill still arrives, checked
            message = receiver.recv(timeout=30.0)
            assert message == pattern(received, SIZE)
            received += 1
    assert received >= 1000


def test_numpy_reads_a_borrowed_message_without_a_copy(name, rust_peer):
    receiver = ipcring.Receiver.create(name, "spsc", slots=16, slot_size=4096)
    producer = Peer([rust_peer, "produce", name, "spsc", 4, 4096])
    for n in range(4):
        message = receiver.recv_ref(timeout=60.0)
        payload = np.frombuffer(message.view, dtype=np.uint8, offset=8)
        expected = (np.arange(8, 4096, dtype=np.uint64) + n * 31).astype(np.uint8)
        assert np.array_equal(payload, expected)
        with pytest.raises(BufferError):  # the array reads the slot itself: no copy was made
            message.release()
        del payload
        message.release()
    producer.finish()
