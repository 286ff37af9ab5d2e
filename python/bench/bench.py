"""The Python benchmark of issue #19: ipcring's Python API against multiprocessing.Queue,
multiprocessing.Pipe and a shared_memory ring guarded by a Lock, on the same work, between two
processes, with 64 B, 4 KiB and 1 MiB messages, streaming and round trip; and, for the 1 MiB
zero-copy target, the Rust zero-copy rate between two Rust processes (examples/bench_peer.rs)
measured in the same run.

    python python/bench/bench.py --json docs/bench-python.json   # about 3 minutes
    python3 docs/render_bench.py                                 # renders docs/python.md

The work, the same on every row: message n is n as 8 little-endian bytes, then payload n % 4 of
four made in advance (payload k's byte i is (k * 7 + i) & 0xff). The sender writes every byte
(a bytes object built for the copying rows, the slot itself for zero-copy), the receiver
compares every byte (the sequence number and the whole payload). Round trip: the echo process
receives, checks and sends the message back; the client checks it again. Rows are measured in
several interleaved rounds; the JSON keeps every round, the table the median and the spread.
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

import ipcring

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SIZES = {64: (200_000, 20_000), 4096: (100_000, 10_000), 1 << 20: (2_000, 300)}  # sizes multiple of 8  # streaming, round trips
PATIENCE = 120.0


def payloads(size):
    return [bytes(((k * 7 + i) & 0xFF) for i in range(size - 8)) for k in range(4)]


SEQUENCE = struct.Struct("<Q")


def message(n, pay):
    return SEQUENCE.pack(n) + pay[n & 3]


def check(n, data, pay):
    """Compares every byte of message n (bytes or a memoryview): the same function on every row.
    Payloads of 1 KiB and more are compared by numpy, 8 bytes at a time, without a copy (a
    memoryview comparison in CPython goes byte by byte)."""
    expected = pay[n & 3]
    if SEQUENCE.unpack_from(data)[0] != n or len(data) != 8 + len(expected):
        raise AssertionError(f"message {n} is wrong")
    if len(expected) < 1024:
        if data[8:] != expected:
            raise AssertionError(f"message {n} is wrong")
    elif not np.array_equal(np.frombuffer(data, dtype=np.uint64, offset=8), np.frombuffer(expected, dtype=np.uint64)):
        raise AssertionError(f"message {n} is wrong")


# ---- the transports: a sender and a receiver factory each, used in two processes ----

class IpcringCopy:
    """ipcring's copying calls: send(bytes) and recv() -> bytes."""

    label = "ipcring (copy)"

    def __init__(self, name, size):
        self.name, self.size = name, size

    def make_receiver(self):
        return ipcring.Receiver.create(self.name, "spsc", slots=64, slot_size=self.size)

    def make_sender(self):
        return ipcring.Sender.open(self.name, "spsc")

    @staticmethod
    def send(sender, n, pay):
        sender.send(message(n, pay))

    @staticmethod
    def recv_check(receiver, n, pay):
        check(n, receiver.recv(timeout=PATIENCE), pay)

    def cleanup(self):
        try:
            ipcring.remove(self.name)
        except ipcring.NotFound:
            pass


class IpcringZeroCopy(IpcringCopy):
    """ipcring's zero-copy calls: written in the slot (reserve, commit), read in place (recv_ref)."""

    label = "ipcring (zero-copy)"

    @staticmethod
    def send(sender, n, pay):
        view = sender.reserve(timeout=PATIENCE)
        SEQUENCE.pack_into(view, 0, n)
        size = 8 + len(pay[0])
        view[8:size] = pay[n & 3]
        sender.commit(size)

    @staticmethod
    def recv_check(receiver, n, pay):
        with receiver.recv_ref(timeout=PATIENCE) as view:
            check(n, view, pay)


class Queue:
    label = "multiprocessing.Queue"

    def __init__(self, name, size):
        self.queue = mp.Queue(maxsize=64)

    def make_receiver(self):
        return self.queue

    def make_sender(self):
        return self.queue

    @staticmethod
    def send(queue, n, pay):
        queue.put(message(n, pay))

    @staticmethod
    def recv_check(queue, n, pay):
        check(n, queue.get(timeout=PATIENCE), pay)

    def cleanup(self):
        self.queue.close()


class Pipe:
    label = "multiprocessing.Pipe"

    def __init__(self, name, size):
        self.receive_end, self.send_end = mp.Pipe(duplex=False)

    def make_receiver(self):
        return self.receive_end

    def make_sender(self):
        return self.send_end

    @staticmethod
    def send(connection, n, pay):
        connection.send_bytes(message(n, pay))

    @staticmethod
    def recv_check(connection, n, pay):
        check(n, connection.recv_bytes(), pay)

    def cleanup(self):
        self.receive_end.close()
        self.send_end.close()


class SharedMemoryLock:
    """A ring of 64 slots in multiprocessing.shared_memory: a Lock guards the positions, two
    Semaphores count the free and the full slots; messages are copied in and out."""

    label = "shared_memory + Lock"
    SLOTS = 64

    def __init__(self, name, size):
        self.size = size
        self.shm = shared_memory.SharedMemory(create=True, size=16 + self.SLOTS * (8 + size))
        self.lock, self.free, self.full = mp.Lock(), mp.Semaphore(self.SLOTS), mp.Semaphore(0)

    def make_receiver(self):
        return self

    def make_sender(self):
        return self

    def _slot(self, position):
        return 16 + (position % self.SLOTS) * (8 + self.size)

    @staticmethod
    def send(ring, n, pay):
        data = message(n, pay)
        ring.free.acquire()
        with ring.lock:
            tail = struct.unpack_from("<Q", ring.shm.buf, 8)[0]
            at = ring._slot(tail)
            struct.pack_into("<Q", ring.shm.buf, at, len(data))
            ring.shm.buf[at + 8:at + 8 + len(data)] = data
            struct.pack_into("<Q", ring.shm.buf, 8, tail + 1)
        ring.full.release()

    @staticmethod
    def recv_check(ring, n, pay):
        if not ring.full.acquire(timeout=PATIENCE):
            raise TimeoutError("shared_memory ring: nothing came")
        with ring.lock:
            head = struct.unpack_from("<Q", ring.shm.buf, 0)[0]
            at = ring._slot(head)
            length = struct.unpack_from("<Q", ring.shm.buf, at)[0]
            data = bytes(ring.shm.buf[at + 8:at + 8 + length])
            struct.pack_into("<Q", ring.shm.buf, 0, head + 1)
        ring.free.release()
        check(n, data, pay)

    def cleanup(self):
        self.shm.close()
        self.shm.unlink()


TRANSPORTS = [IpcringCopy, IpcringZeroCopy, Queue, Pipe, SharedMemoryLock]


# ---- the patterns ----

def _stream_producer(transport, count, size):
    sender = transport.make_sender()
    pay = payloads(size)
    for n in range(count):
        transport.send(sender, n, pay)


def stream(transport_class, name, size, count):
    """Messages per second received, from the first message to the last."""
    transport = transport_class(name, size)
    try:
        receiver = transport.make_receiver()
        pay = payloads(size)
        producer = mp.Process(target=_stream_producer, args=(transport, count, size))
        producer.start()
        transport.recv_check(receiver, 0, pay)
        started = time.perf_counter()
        for n in range(1, count):
            transport.recv_check(receiver, n, pay)
        elapsed = time.perf_counter() - started
        producer.join(PATIENCE)
        assert producer.exitcode == 0, f"{transport.label}: the producer failed"
        return (count - 1) / elapsed
    finally:
        transport.cleanup()


def round_trip(transport_class, name, size, count):
    """The median round trip in microseconds: the client sends, the echo process checks and
    sends it back, the client checks it."""
    there, back = transport_class(name + "-a", size), transport_class(name + "-b", size)
    try:
        receiver = back.make_receiver()
        ready = mp.Event()
        echo = mp.Process(target=_echo_process, args=(transport_class, there, back, count, size, ready))
        echo.start()
        if not ready.wait(PATIENCE):
            raise TimeoutError("the echo process did not start")
        sender = there.make_sender()
        pay = payloads(size)
        times = []
        for n in range(count):
            started = time.perf_counter()
            transport_class.send(sender, n, pay)
            transport_class.recv_check(receiver, n, pay)
            times.append(time.perf_counter() - started)
        echo.join(PATIENCE)
        assert echo.exitcode == 0, f"{there.label}: the echo process failed"
        return statistics.median(times) * 1e6
    finally:
        there.cleanup()
        back.cleanup()


def _echo_process(transport_class, there, back, count, size, ready):
    receiver = there.make_receiver()
    sender = back.make_sender()
    ready.set()
    pay = payloads(size)
    # The same on every row: receive and check, then send message n (every byte written).
    for n in range(count):
        transport_class.recv_check(receiver, n, pay)
        transport_class.send(sender, n, pay)


def rust_zero_copy(name, size, count):
    """Messages per second between two Rust processes, zero-copy, the same work."""
    peer = TARGET / "release" / "examples" / "bench_peer"
    consumer = subprocess.Popen([peer, "consume", name, str(count), str(size)], stdout=subprocess.PIPE, text=True)
    assert consumer.stdout.readline().strip() == "ready"
    producer = subprocess.Popen([peer, "produce", name, str(count), str(size)])
    line = consumer.stdout.readline().split()
    assert producer.wait(PATIENCE) == 0 and consumer.wait(PATIENCE) == 0 and line[0] == "elapsed_ns"
    return (count - 1) / (int(line[1]) / 1e9)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every message count")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "bench_peer"], cwd=ROOT, check=True)
    rows = {}
    base = f"ipcring-pybench-{os.getpid()}"
    for round_ in range(args.rounds):
        for size, (streamed, trips) in SIZES.items():
            streamed, trips = max(2, int(streamed * args.scale)), max(2, int(trips * args.scale))
            for transport in TRANSPORTS:
                rate = stream(transport, f"{base}-{round_}-{size}", size, streamed)
                rows.setdefault((transport.label, size, "streaming"), []).append(rate)
                rtt = round_trip(transport, f"{base}-rt-{round_}-{size}", size, trips)
                rows.setdefault((transport.label, size, "round_trip"), []).append(rtt)
                print(f"round {round_} {size:>8} B {transport.label:<22} {rate:>12.0f} msgs/s  rtt p50 {rtt:9.1f} us", flush=True)
            if size == 1 << 20:
                rate = rust_zero_copy(f"{base}-rust-{round_}", size, streamed)
                rows.setdefault(("Rust ipcring (zero-copy)", size, "streaming"), []).append(rate)
                print(f"round {round_} {size:>8} B {'Rust ipcring (zero-copy)':<22} {rate:>12.0f} msgs/s", flush=True)
    report = {
        "git_sha": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "rounds": args.rounds,
        "scale": args.scale,
        "command": "python python/bench/bench.py" + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (f" --scale {args.scale}" if args.scale != 1.0 else "") + (f" --json {args.json}" if args.json else ""),
        "rows": [
            {"transport": transport, "msg_size": size, "pattern": pattern, "unit": "msgs/s" if pattern == "streaming" else "us",
             "median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}
            for (transport, size, pattern), values in rows.items()
        ],
    }
    queue64 = statistics.median(rows[("multiprocessing.Queue", 64, "streaming")])
    ours64 = statistics.median(rows[("ipcring (copy)", 64, "streaming")])
    zero_copy_mib = statistics.median(rows[("ipcring (zero-copy)", 1 << 20, "streaming")])
    rust_mib = statistics.median(rows[("Rust ipcring (zero-copy)", 1 << 20, "streaming")])
    report["targets"] = {
        "x_queue_64": ours64 / queue64,
        "x_rust_zero_copy_1mib": zero_copy_mib / rust_mib,
    }
    print(f"ipcring (copy) / multiprocessing.Queue at 64 B streaming: {ours64 / queue64:.1f}x (target >= 10x)")
    print(f"Python zero-copy / Rust zero-copy at 1 MiB streaming: {zero_copy_mib / rust_mib:.2f}x (target >= 0.5x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
