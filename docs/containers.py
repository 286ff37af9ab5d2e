#!/usr/bin/env python3
"""The "Containers" figures of docs/reliability.md, measured and rendered, never typed.

    python3 docs/containers.py measure   # runs the namespaced tests, stores docs/containers-run.txt
    python3 docs/containers.py render    # rewrites the figures table in docs/reliability.md
    python3 docs/containers.py check     # fails if the table differs from what render would write

`measure` needs root (it makes PID, time and mount namespaces) and takes about a minute.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "docs", "containers-run.txt")
DOC = os.path.join(ROOT, "docs", "reliability.md")
BEGIN, END = "<!-- containers:begin (docs/containers.py render) -->", "<!-- containers:end -->"
KILLS = "400"

COMMANDS = [
    ["cargo", "test", "--release", "-p", "ipcring-cli", "--test", "namespaces", "--", "--nocapture", "--test-threads=1"],
    ["cargo", "test", "--release", "-p", "ipcring", "--test", "crash", "--", "--nocapture",
     "kill_9_with_each", "survivor_of_a_killed_peer_in_another"],
]


def measure():
    environment = dict(os.environ, IPCRING_CRASH_NS_KILLS=KILLS)
    lines = []
    for command in COMMANDS:
        shown = ("IPCRING_CRASH_NS_KILLS=%s " % KILLS) + " ".join(command)
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit("%s failed:\n%s%s" % (shown, done.stdout, done.stderr))
        lines.append("$ " + shown)
        lines.extend(line for line in done.stdout.splitlines() if line.strip())
    date = subprocess.run(["date", "-u", "+%Y-%m-%d"], capture_output=True, text=True).stdout.strip()
    with open(RUN, "w") as out:
        out.write("# measured %s by python3 docs/containers.py measure\n" % date)
        out.write("\n".join(lines) + "\n")


def table():
    text = open(RUN).read()
    date = re.search(r"# measured (\S+)", text).group(1)
    results = re.findall(r"^test result: ok\. (\d+) passed; (\d+) failed", text, re.M)
    if len(results) != len(COMMANDS) or any(failed != "0" for _, failed in results):
        sys.exit("the stored run is incomplete or has failures: %s" % results)
    tests = sum(int(passed) for passed, _ in results)
    cli = [float(ms) for ms in re.findall(r"Disconnected ([\d.]+)ms after the kill", text)]
    survivors = [int(ms) for ms in re.findall(r"peer in a PID namespace\s+Disconnected\s+(\d+) ms", text)]
    cpu = [float(share) for share in re.findall(r"peer in a PID namespace.*?([\d.]+) % of a core", text)]
    total = re.search(r"^total: (\d+) kills, (\d+) messages logged as sent, (\d+) delivered, (\d+) redelivered, "
                      r"(\d+) lost, ([\d.]+) s", text, re.M)
    kills, sent, delivered, redelivered, lost, seconds = total.groups()
    rows = [
        ("tests with peers in other namespaces", "%d passed, 0 failed" % tests),
        ("`kill -9` of peers each in its own PID namespace",
         "%s kills, %s messages logged as sent, %s delivered (with those a killed producer sent but had not logged), %s redelivered (held by a killed consumer), **%s lost** (%s s)"
         % (kills, sent, delivered, redelivered, lost, seconds)),
        ("survivor's `Disconnected` after a namespaced peer's `kill -9`, 300 ms interval",
         "%d-%d ms (%d cases); at most %.1f %% of a core while waiting" % (min(survivors), max(survivors),
                                                                           len(survivors), max(cpu))),
        ("the same through the command line (pid and time namespaces), 100 ms interval",
         ", ".join("%.0f ms" % ms for ms in cli)),
    ]
    lines = [BEGIN, "", "Measured %s (`python3 docs/containers.py measure`, stored in `docs/containers-run.txt`):" % date,
             "", "| measure | figure |", "|---|---|"]
    lines += ["| %s | %s |" % row for row in rows]
    return "\n".join(lines + ["", END])


def rendered(document):
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + table() + document[end:]


def main():
    action = sys.argv[1] if len(sys.argv) > 1 else "render"
    if action == "measure":
        measure()
        action = "render"
    document = open(DOC).read()
    if action == "render":
        open(DOC, "w").write(rendered(document))
    elif action == "check":
        if rendered(document) != document:
            sys.exit("docs/reliability.md's containers figures differ from docs/containers-run.txt: "
                     "run python3 docs/containers.py render")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
