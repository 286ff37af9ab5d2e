#!/usr/bin/env python3
"""Instructions per message, counted by callgrind (deterministic: the same binary gives the same
count whatever else the machine does), stored in docs/instructions-run.json and rendered into
docs/performance.md, never typed by hand.

    python3 docs/instructions.py measure   # builds examples/instructions.rs, runs every mode
                                           # under valgrind, stores the counts, then renders
    python3 docs/instructions.py           # renders the stored counts into docs/performance.md
    python3 docs/instructions.py check     # fails if performance.md differs from the rendering
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "docs", "instructions-run.json")
TARGET = os.path.join(ROOT, "docs", "performance.md")
MARKER = "instructions"
# examples/instructions.rs: 512 messages pushed then popped, 2000 times.
MESSAGES = 512 * 2000
MODES = [
    ("rtrb", "rtrb (`[u8; 64]` moved in and out)"),
    ("zero-copy", "ipcring SPSC zero-copy (reserve, fill in place, commit; `recv_ref`)"),
    ("copy", "ipcring SPSC copying (`send` from a buffer, `recv_into` a buffer)"),
    ("zero-copy-futex", "ipcring SPSC zero-copy on a futex ring (adds the wakeup check)"),
    ("zero-copy-membarrier", "ipcring SPSC zero-copy on a membarrier ring (the check without the fence)"),
    ("array-queue", "crossbeam `ArrayQueue` (`[u8; 64]` moved in and out)"),
    ("mpmc-ring", "ipcring MPMC bare ring (`Producer::try_push`, `Consumer::try_peek`)"),
    ("mpmc-endpoints", "ipcring MPMC endpoints (`try_send`, `try_recv` into a `Vec`)"),
]


def git_sha():
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def measure():
    subprocess.run(["cargo", "build", "--release", "--example", "instructions"], cwd=ROOT, check=True)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples",
                          "instructions")
    counts = {}
    for mode, _ in MODES:
        output = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary, mode],
                                cwd=ROOT, capture_output=True, text=True, check=True).stderr
        collected = re.search(r"Collected : (\d+)", output)
        if not collected:
            sys.exit("callgrind printed no total for %s:\n%s" % (mode, output))
        counts[mode] = int(collected.group(1))
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    json.dump({"git_sha": git_sha(), "rustc": rustc, "valgrind": version, "messages": MESSAGES,
               "instructions": counts}, open(RUN, "w"), indent=1)
    open(RUN, "a").write("\n")


def body(run):
    counts = run["instructions"]
    per = {mode: counts[mode] / run["messages"] for mode in counts}
    lines = ["Counted at commit `%s` (%s, %s), %s messages per mode, setup included:" % (
        run["git_sha"][:12], run["rustc"], run["valgrind"], format(run["messages"], ",")), "",
        "| path | instructions / message | vs rtrb | vs `ArrayQueue` |", "|---|---:|---:|---:|"]
    for mode, label in MODES:
        if mode in per:
            lines.append("| %s | %.1f | %.2fx | %.2fx |" % (label, per[mode], per[mode] / per["rtrb"],
                                                           per[mode] / per["array-queue"]))
    return "\n".join(lines)


def rendered(text, content):
    begin = "<!-- %s:begin (python3 docs/instructions.py) -->" % MARKER
    end = "<!-- %s:end -->" % MARKER
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + begin + "\n" + content + "\n" + end + text[stop:]


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "render"
    if command == "measure":
        measure()
    text = open(TARGET).read()
    new = rendered(text, body(json.load(open(RUN))))
    if command == "check":
        if new != text:
            sys.exit("docs/performance.md is not rendered from docs/instructions-run.json: "
                     "run python3 docs/instructions.py")
        return
    open(TARGET, "w").write(new)


if __name__ == "__main__":
    main()
