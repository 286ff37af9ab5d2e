"""Fixtures of the Python package's tests: unique ring names (removed afterwards), and the peers
in other languages, built once per session: the Rust peer (examples/pattern_peer.rs) and the C
examples (capi/examples/*.c, linked to libipcring)."""

import os
import subprocess
import threading
from pathlib import Path

import pytest

import ipcring

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# Every blocking wait of the tests is bounded by this.
PATIENCE = 60.0

_counter = iter(range(1_000_000))


@pytest.fixture
def name():
    ring = f"ipcring-py-{os.getpid()}-{next(_counter)}"
    yield ring
    try:
        ipcring.remove(ring)
    except ipcring.NotFound:
        pass


def pattern(n, size):
    """Message n of the cross-language pattern: n as 8 little-endian bytes, then (n * 31 + i) & 0xff."""
    start = (n * 31 + 8) & 0xFF
    return n.to_bytes(8, "little") + _TABLE[start:start + size - 8]


_TABLE = bytes(range(256)) * 4097  # long enough for 1 MiB messages


@pytest.fixture(scope="session")
def rust_peer():
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "pattern_peer"], cwd=ROOT, check=True)
    return TARGET / "release" / "examples" / "pattern_peer"


@pytest.fixture(scope="session")
def c_peers(tmp_path_factory):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ipcring-c"], cwd=ROOT, check=True)
    lib = TARGET / "release"
    out = tmp_path_factory.mktemp("c")
    programs = {}
    for program in ("producer", "consumer"):
        subprocess.run(
            [os.environ.get("CC", "cc"), "-std=c11", "-O2", "-D_GNU_SOURCE", "-I", ROOT / "capi" / "include",
             ROOT / "capi" / "examples" / f"{program}.c", "-o", out / program,
             f"-L{lib}", "-lipcring", f"-Wl,-rpath,{lib}"],
            check=True,
        )
        programs[program] = out / program
    return programs


class Peer:
    """A peer process whose output lines are read by a thread; every wait is bounded."""

    def __init__(self, args):
        self.process = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def expect(self, prefix):
        with self.cond:
            ok = self.cond.wait_for(lambda: self.lines, timeout=PATIENCE)
            assert ok, f"no line `{prefix}` within {PATIENCE} s"
            line = self.lines.pop(0)
        assert line is not None and line.startswith(prefix), f"expected `{prefix}`, got {line!r}"
        return line[len(prefix):].strip()

    def finish(self):
        assert self.process.wait(timeout=PATIENCE) == 0

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=PATIENCE)
