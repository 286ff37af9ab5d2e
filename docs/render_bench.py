#!/usr/bin/env python3
"""The `ipcring bench` figures of docs/benchmarks.md and README.md, rendered from a stored run,
never typed by hand.

    cargo run --release -- bench --json docs/bench-quick.json --plot docs/bench-quick.svg
    cargo run --release -- bench --sizes 8,64 --json docs/bench-classic.json --plot docs/bench-classic.svg
    cargo run --release -- bench --transports shm-spsc:spin,shm-spsc:futex,shm-spsc:membarrier,shm-mpmc:spin,pipe,unix,mq \
        --sizes 8,64 --rounds 5 --json docs/bench-small.json --plot docs/bench-small.svg
    cargo run --release -- bench --transports shm-broadcast --peers --json docs/bench-fanout.json
    cargo run --release -- bench --transports shm-spsc:futex --sizes 64,4096 --rounds 5 --json docs/bench-async.json
    IPCRING_READINESS=thread cargo run --release -- bench --transports shm-spsc:futex --sizes 64,4096 --rounds 5 \
        --json docs/bench-async-thread.json
    python python/bench/bench.py --json docs/bench-python.json   (in the venv of .ci/run)
    cargo build --release -p ipcring-bridge && target/release/ipcring-bridge bench --json docs/bench-bridge.json
    python3 docs/render_bench.py            # rewrites the marked parts of the files
    python3 docs/render_bench.py check      # fails if they differ from what it would write
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "docs", "bench-quick.json")
# Every transport at 8 and 64 bytes in one run: the comparison of docs/transports.md.
CLASSIC = os.path.join(ROOT, "docs", "bench-classic.json")
# Small messages at the hardware limit (issue #16): its targets, after (this run) and before (the
# stored quick run of commit 58cfdfe and the instruction counts of commit 2305157, kept in
# docs/before-16/).
SMALL = os.path.join(ROOT, "docs", "bench-small.json")
BEFORE_16 = os.path.join(ROOT, "docs", "before-16", "bench-quick.json")
INSTRUCTIONS = os.path.join(ROOT, "docs", "instructions-run.json")
INSTRUCTIONS_BEFORE_16 = os.path.join(ROOT, "docs", "before-16", "instructions-run.json")
# Fan-out (issue #17): the broadcast ring's rows and iceoryx2's publish-subscribe in the same rounds.
FANOUT = os.path.join(ROOT, "docs", "bench-fanout.json")
# Event loops (issue #18): the async SPSC receiver beside the blocking one and the raw limits.
ASYNC = os.path.join(ROOT, "docs", "bench-async.json")
# The same rows with readiness through the driver thread (IPCRING_READINESS=thread), the fallback
# where io_uring is refused.
ASYNC_THREAD = os.path.join(ROOT, "docs", "bench-async-thread.json")
# Other languages (issue #19): the Python API against multiprocessing and the Rust zero-copy rate.
PYTHON = os.path.join(ROOT, "docs", "bench-python.json")
# Between hosts (issue #20): the Zenoh bridge on loopback beside ipcring's TCP transport.
BRIDGE = os.path.join(ROOT, "docs", "bench-bridge.json")
TARGETS = [
    (os.path.join(ROOT, "docs", "benchmarks.md"), "bench-quick"),
    (os.path.join(ROOT, "docs", "benchmarks.md"), "bench-load"),
    (os.path.join(ROOT, "README.md"), "bench-brief"),
    (os.path.join(ROOT, "docs", "transports.md"), "bench-classic"),
    (os.path.join(ROOT, "docs", "performance.md"), "targets-16"),
    (os.path.join(ROOT, "docs", "performance.md"), "fanout-17"),
    (os.path.join(ROOT, "README.md"), "fanout-brief"),
    (os.path.join(ROOT, "docs", "event-loops.md"), "async-18"),
    (os.path.join(ROOT, "docs", "event-loops.md"), "async-thread-18"),
    (os.path.join(ROOT, "README.md"), "async-brief"),
    (os.path.join(ROOT, "docs", "python.md"), "python-19"),
    (os.path.join(ROOT, "README.md"), "python-brief"),
    (os.path.join(ROOT, "docs", "bridge.md"), "bridge-20"),
    (os.path.join(ROOT, "README.md"), "bridge-brief"),
]


def rate(value):
    for limit, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= limit:
            return "%.2f%s" % (value / limit, unit) if unit != " k" else "%.1f%s" % (value / limit, unit)
    return "%.0f" % value


def nanos(value):
    if value is None:
        return "-"
    if value >= 1_000_000:
        return "%.2f ms" % (value / 1e6)
    if value >= 10_000:
        return "%.1f us" % (value / 1e3)
    return "%d ns" % value


def spread(low, high, show):
    if low is None or high is None:
        return "-"
    return "%s-%s" % (show(low), show(high))


def latency_limit(report, row):
    """The p50 a round-trip row is compared with, as `bench` compares it."""
    if row["transport"].startswith("shm-") or row["wait"] == "spin":
        for ring in report["limits"]["plain_ring"]:
            if ring["msg_size"] == row["msg_size"]:
                return ring["pingpong"]["p50_ns"], "plain"
    return report["limits"]["futex"]["p50_ns"], "futex"


def shape(row):
    """(producers, consumers) of a row: (1, 1) but on the rows of other shapes."""
    return row.get("producers", 1), row.get("consumers", 1)


def find(report, transport, wait, size, pattern, api="copy", producers=1, consumers=1):
    for row in report["results"]:
        if (row["transport"], row["wait"], row["msg_size"], row["pattern"], row.get("api", "copy"),
                shape(row)) == (transport, wait, size, pattern, api, (producers, consumers)):
            return row
    return None


def api_cell(row):
    """The api column: the API (with a batch row's run length), the shape unless 1x1, and `*` when
    the row had more processes than CPUs (escaped for Markdown)."""
    cell = row.get("api", "copy").replace("_", "-")
    if row.get("batch_length"):
        cell += " %d" % row["batch_length"]
    if shape(row) != (1, 1):
        cell += " %dx%d" % shape(row)
    if row.get("more_processes_than_cpus"):
        cell += "\\*"
    return cell


def header(report):
    machine = report["machine"]
    pinned = report.get("pinned")
    placement = ("this process on CPU %d, every helper on CPU %d" % (pinned["mine"], pinned["theirs"])
                 if pinned else "not pinned")
    return ("Run of `%s` at commit `%s` (%s), %d rounds, %s; machine: %d CPUs, %s, Linux %s; one clock "
            "read %.0f ns." % (" ".join(["ipcring"] + report["args"][1:]), report["git_sha"][:12], report["rustc"],
                              report["rounds"], placement, machine["cpus"], machine["model"], machine["kernel"],
                              report["clock_read_ns"]))


def stream_cells(stream):
    """A throughput row's ratios and costs: x plain ring, x bare loop, sys/msg, cpu/msg."""
    calls = stream.get("syscalls_per_msg")
    return ["%.2fx" % stream["x_plain_ring"] if stream.get("x_plain_ring") else "-",
            "%.2fx" % stream["x_bare_loop"] if stream.get("x_bare_loop") else "-",
            "%.4f" % calls if calls is not None else "-",
            nanos(round(stream["cpu_ns_per_msg"])) if stream.get("cpu_ns_per_msg") else "-"]


def quick(report):
    limits = report["limits"]
    lines = [header(report), "", "Limits, the median round:", ""]
    lines.append("| limit | %s |" % " | ".join("%d B" % ring["msg_size"] for ring in limits["plain_ring"]))
    lines.append("|---|" + "---|" * len(limits["plain_ring"]))
    for name, show in (
            ("plain ring, msgs/s (copy out)", lambda ring: rate(ring["msgs_per_sec"])),
            ("plain ring, msgs/s (checked in place)", lambda ring: rate(ring["in_place_msgs_per_sec"])),
            ("plain-ring ping-pong p50", lambda ring: nanos(ring["pingpong"]["p50_ns"]))):
        lines.append("| %s | %s |" % (name, " | ".join(show(ring) for ring in limits["plain_ring"])))
    asleep = ""
    if "futex_asleep" in limits:
        asleep = "; each side asleep before it is woken: raw futex p50 %s, raw eventfd p50 %s" % (
            nanos(limits["futex_asleep"]["p50_ns"]), nanos(limits["eventfd_asleep"]["p50_ns"]))
    if "signal_asleep" in limits:
        asleep += ", raw realtime signal p50 %s" % nanos(limits["signal_asleep"]["p50_ns"])
    lines += ["", "Cache-line ping-pong p50: one line %s, two lines %s; raw futex ping-pong p50 %s%s." % (
        nanos(limits["cache_line_same_line"]["p50_ns"]), nanos(limits["cache_line_two_lines"]["p50_ns"]),
        nanos(limits["futex"]["p50_ns"]), asleep), ""]
    for mechanism in ("pipe", "unix", "mq"):
        floors = [floor for floor in limits.get("bare_loops", []) if floor["mechanism"] == mechanism]
        if floors:
            lines.insert(len(lines) - 1, "| bare %s loop, msgs/s | %s |" % (mechanism, " | ".join(
                next((rate(floor["msgs_per_sec"]) for floor in floors if floor["msg_size"] == ring["msg_size"]), "-")
                for ring in limits["plain_ring"])))
    lines.append("| transport | wait | api | size | msgs/s | min-max | x plain ring | x bare loop | sys/msg | cpu/msg | "
                 "rtt p50 | min-max | p99 | p50 vs limit | rtt sleeps |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = []
    for row in report["results"]:
        if row["pattern"] not in ("throughput", "latency"):
            continue
        key = (row["transport"], row["wait"], row.get("api", "copy"), row["msg_size"], shape(row))
        if key not in keys:
            keys.append(key)
    for transport, wait, api, size, (producers, consumers) in keys:
        stream = find(report, transport, wait, size, "throughput", api, producers, consumers)
        trip = find(report, transport, wait, size, "latency", api, producers, consumers)
        cells = [transport, wait, api_cell(stream or trip), str(size)]
        if stream:
            cells += [rate(stream["msgs_per_sec"]),
                      spread(stream.get("msgs_per_sec_min"), stream.get("msgs_per_sec_max"), rate)]
            cells += stream_cells(stream)
        else:
            cells += ["-"] * 6
        if trip:
            limit, name = latency_limit(report, trip)
            sleeps = trip.get("sleeps_per_msg")
            cells += [nanos(trip["p50_ns"]), spread(trip.get("p50_ns_min"), trip.get("p50_ns_max"), nanos),
                      nanos(trip["p99_ns"]), "%.2fx %s" % (trip["p50_ns"] / limit, name) if limit else "-",
                      "%.2f" % sleeps if sleeps is not None else "-"]
        else:
            cells += ["-"] * 5
        lines.append("| %s |" % " | ".join(cells))
    if any(row.get("more_processes_than_cpus") for row in report["results"]):
        lines += ["", "\\* more processes than CPUs: the row's producers and consumers took turns on the CPUs "
                      "(see the note)."]
    wake = [row for row in report["results"] if row["pattern"] == "wake_latency"]
    if wake:
        floor = limits["futex_asleep"]["p50_ns"]
        lines += ["", "Wake latency: round trips with each receiver asleep before its message, against the raw "
                  "futex ping-pong measured the same way:", "",
                  "| transport | wait | size | wake rtt p50 | min-max | p99 | x raw futex | sleeps/rtt | late wakes |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in wake:
            sleeps, late = row.get("sleeps_per_msg"), row.get("late_wakes")
            lines.append("| %s |" % " | ".join([
                row["transport"], row["wait"], str(row["msg_size"]), nanos(row["p50_ns"]),
                spread(row.get("p50_ns_min"), row.get("p50_ns_max"), nanos), nanos(row["p99_ns"]),
                "%.2fx" % (row["p50_ns"] / floor) if floor else "-",
                "%.2f" % sleeps if sleeps is not None else "-", str(late) if late is not None else "-"]))
    for note in report.get("notes", []):
        lines += ["", "Note: %s" % note]
    return "\n".join(lines)


def load(report):
    """The load rows (`pattern: load`): one-way latency under an open-loop sender, as `bench` prints them."""
    rows = [row for row in report["results"] if row["pattern"] == "load"]
    if not rows:
        return "No load rows in this run (it predates them)."
    lines = ["| transport | wait | size | load | offered msgs/s | achieved msgs/s | one-way p50 | min-max | p99 | "
             "p99.9 | max | failed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        failed = {True: "yes", False: "no"}.get(row.get("failed"), "-")
        lines.append("| %s |" % " | ".join([
            row["transport"], row["wait"], str(row["msg_size"]), "%.0f %%" % (row["offered_load"] * 100),
            rate(row["offered_msgs_per_sec"]), rate(row["msgs_per_sec"]), nanos(row["p50_ns"]),
            spread(row.get("p50_ns_min"), row.get("p50_ns_max"), nanos), nanos(row["p99_ns"]),
            nanos(row["p999_ns"]), nanos(row["max_ns"]), failed]))
    return "\n".join(lines)


def brief(report):
    spsc = find(report, "shm-spsc", "spin", 64, "throughput")
    spsc_zero = find(report, "shm-spsc", "spin", 4096, "throughput", "zero_copy")
    trip = find(report, "shm-spsc", "spin", 64, "latency")
    pipe = find(report, "pipe", "block", 64, "throughput")
    pipe_trip = find(report, "pipe", "block", 64, "latency")
    limit, _ = latency_limit(report, trip)
    return ("From the stored quick run of `ipcring bench` (`docs/bench-quick.json`, commit `%s`; medians of %d "
            "rounds, ratios within the run): `shm-spsc` streams 64-byte messages at %s msgs/s through the "
            "copying API, %.2fx a plain SPSC ring doing the same work between the same two processes, and 4 KiB "
            "messages zero-copy at %.2fx its in-place ceiling; a 64-byte round trip takes %s (p50), %.2fx the "
            "plain-ring ping-pong; a pipe moves %s msgs/s at 64 B with a %s round trip."
            % (report["git_sha"][:12], report["rounds"], rate(spsc["msgs_per_sec"]), spsc["x_plain_ring"],
               spsc_zero["x_plain_ring"], nanos(trip["p50_ns"]), trip["p50_ns"] / limit, rate(pipe["msgs_per_sec"]),
               nanos(pipe_trip["p50_ns"])))


def classic(report):
    """One line a transport and wait strategy (copying API): the round trip at 8 B, the stream at 64 B
    (8 B where the transport takes no more), the wake latency, each against its limit in the same run."""
    limits = report["limits"]
    floor = limits.get("futex_asleep", {}).get("p50_ns")
    lines = [header(report), "",
             "| transport | wait | rtt p50, 8 B | vs limit | msgs/s, 64 B | x plain ring | x bare loop | sys/msg | "
             "cpu/msg | wake rtt p50 | x raw futex |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = []
    for row in report["results"]:
        key = (row["transport"], row["wait"])
        if row.get("api", "copy") == "copy" and shape(row) == (1, 1) and key not in keys:
            keys.append(key)
    for transport, wait in keys:
        trip = find(report, transport, wait, 8, "latency")
        stream = find(report, transport, wait, 64, "throughput")
        stream_size = 64
        if stream is None:
            stream, stream_size = find(report, transport, wait, 8, "throughput"), 8
        wake = find(report, transport, wait, 64, "wake_latency") or find(report, transport, wait, 8, "wake_latency")
        cells = [transport, wait]
        if trip:
            limit, name = latency_limit(report, trip)
            cells += [nanos(trip["p50_ns"]), "%.2fx %s" % (trip["p50_ns"] / limit, name) if limit else "-"]
        else:
            cells += ["-", "-"]
        if stream:
            cells += [rate(stream["msgs_per_sec"]) + ("" if stream_size == 64 else " (8 B)")]
            cells += stream_cells(stream)
        else:
            cells += ["-"] * 5
        if wake:
            cells += [nanos(wake["p50_ns"]), "%.2fx" % (wake["p50_ns"] / floor) if floor else "-"]
        else:
            cells += ["-", "-"]
        lines.append("| %s |" % " | ".join(cells))
    for note in report.get("notes", []):
        lines += ["", "Note: %s" % note]
    return "\n".join(lines)


def small_figures(report, instructions):
    """Issue #16's measures in one run (None where the run lacks them), with the instruction
    counts of the same code: {measure: (value, detail)}."""
    figures = {}

    def ratio(numerator, denominator):
        return numerator / denominator if numerator and denominator else None

    for api, key in (("copy", "copy"), ("zero_copy", "zero-copy")):
        row = find(report, "shm-spsc", "spin", 64, "throughput", api)
        figures["stream " + key] = (row.get("x_plain_ring") if row else None, "")
    two_lines = report["limits"].get("cache_line_two_lines", {}).get("p50_ns")
    for size in (8, 64):
        trip = find(report, "shm-spsc", "spin", size, "latency")
        if trip:
            limit, _ = latency_limit(report, trip)
            figures["rtt %d" % size] = (ratio(trip["p50_ns"], limit), "%s" % nanos(trip["p50_ns"]))
            if size == 8:
                figures["rtt 8 lines"] = (ratio(trip["p50_ns"], two_lines), "")
        else:
            figures["rtt %d" % size] = (None, "")
            figures.setdefault("rtt 8 lines", (None, ""))
    spin = find(report, "shm-spsc", "spin", 64, "throughput")
    for wait in ("futex", "membarrier"):
        row = find(report, "shm-spsc", wait, 64, "throughput")
        figures["sleepable " + wait] = (ratio(row and row["msgs_per_sec"], spin and spin["msgs_per_sec"]), "")
    mpmc = find(report, "shm-mpmc", "spin", 64, "throughput")
    figures["mpmc"] = (ratio(mpmc and mpmc["msgs_per_sec"], spin and spin["msgs_per_sec"]), "")
    for transport in ("pipe", "unix", "mq"):
        row = find(report, transport, "block", 64, "throughput")
        figures["bare " + transport] = (row.get("x_bare_loop") if row else None, "")
    counts = instructions["instructions"]
    for mode in ("copy", "zero-copy"):
        figures["instructions " + mode] = (ratio(counts.get(mode), counts.get("rtrb")),
                                           "%.1f" % (counts[mode] / instructions["messages"]))
    return figures


MEASURES_16 = [
    ("stream copy", "shm-spsc 64 B stream, copying API, spin (x plain ring)", ">= 0.9x", ">="),
    ("stream zero-copy", "shm-spsc 64 B stream, zero-copy API, spin (x plain ring in place)", ">= 1.0x", ">="),
    ("rtt 8", "spin round trip 8 B (x plain-ring ping-pong)", "<= 1.15x", "<="),
    ("rtt 64", "spin round trip 64 B (x plain-ring ping-pong)", "<= 1.15x", "<="),
    ("rtt 8 lines", "spin round trip 8 B (x two-line cache ping-pong)", "<= 1.3x", "<="),
    ("sleepable futex", "futex strategy 64 B stream, nobody asleep (x spin)", ">= 0.9x", ">="),
    ("sleepable membarrier", "membarrier strategy 64 B stream, nobody asleep (x spin)", ">= 0.9x", ">="),
    ("mpmc", "MPMC 1P1C 64 B stream, spin (x SPSC)", ">= 0.75x", ">="),
    ("bare pipe", "pipe 64 B stream (x bare loop)", ">= 0.9x", ">="),
    ("bare unix", "unix 64 B stream (x bare loop)", ">= 0.9x", ">="),
    ("bare mq", "mq 64 B stream (x bare loop)", ">= 0.9x", ">="),
    ("instructions copy", "instructions per message, copying (x rtrb)", "<= 1.2x", "<="),
    ("instructions zero-copy", "instructions per message, zero-copy (x rtrb)", "<= 1.2x", "<="),
]


def targets_16(after, before, instructions, instructions_before):
    """Issue #16's targets: the figure before (docs/before-16/) and after (the stored small run)."""
    now, then = small_figures(after, instructions), small_figures(before, instructions_before)

    def cell(figure):
        value, detail = figure
        if value is None:
            return "not measured"
        return "%.2fx" % value + (" (%s)" % detail if detail else "")

    lines = ["After: " + header(after) + " Instructions: commit `%s`. Before: the stored quick run of commit "
             "`%s` and the instruction counts of commit `%s` (`docs/before-16/`); that run measured 64 B only and "
             "had no bare loops or membarrier strategy yet." % (instructions["git_sha"][:12], before["git_sha"][:12],
                                                               instructions_before["git_sha"][:12]), "",
             "| measure | target | before | after | met |", "|---|---|---:|---:|---|"]
    for key, label, target, sense in MEASURES_16:
        value = now[key][0]
        bound = float(target.split()[1].rstrip("x"))
        met = "-" if value is None else ("yes" if (value >= bound if sense == ">=" else value <= bound) else "no")
        lines.append("| %s | %s | %s | %s | %s |" % (label, target, cell(then[key]), cell(now[key]), met))
    return "\n".join(lines)


def fanout_rows(report, transport, wait):
    """{(size, subscribers): (throughput row, latency row)} of one transport's fan-out rows."""
    rows = {}
    for row in report["results"]:
        if row["transport"] == transport and row["wait"] == wait and row.get("api", "copy") == "copy":
            key = (row["msg_size"], row.get("consumers", 1))
            pair = rows.setdefault(key, [None, None])
            pair[0 if row["pattern"] == "throughput" else 1] = row
    return rows


def fanout(report):
    """The fan-out table: per-subscriber throughput and round trips, ipcring's broadcast ring and
    iceoryx2's publish-subscribe, 1 to N subscribers, from one run."""
    ours = fanout_rows(report, "shm-broadcast", "futex")
    theirs = fanout_rows(report, "iceoryx2", "event")
    cpus = report["machine"]["cpus"]
    lines = [header(report) + " The fan-out rows themselves pin no process: all of them may use every CPU.", "",
             "| size | subscribers | shm-broadcast msgs/s per subscriber (min-max) | x its 1x1 | iceoryx2 msgs/s per "
             "subscriber (min-max) | x its 1x1 | shm-broadcast / iceoryx2 | rtt p50: shm-broadcast | rtt p50: iceoryx2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (size, subscribers) in sorted(ours):
        mine, my_rtt = ours[(size, subscribers)]
        other, other_rtt = theirs.get((size, subscribers), (None, None))
        my_one = ours.get((size, 1), (None, None))[0]
        other_one = theirs.get((size, 1), (None, None))[0]

        def per(row):
            if not row or not row.get("msgs_per_sec"):
                return "-"
            return "%s (%s)" % (rate(row["msgs_per_sec"]), spread(row.get("msgs_per_sec_min"),
                                                                   row.get("msgs_per_sec_max"), rate))

        def times(row, one):
            if not row or not one or not row.get("msgs_per_sec") or not one.get("msgs_per_sec"):
                return "-"
            return "%.2fx" % (row["msgs_per_sec"] / one["msgs_per_sec"])

        versus = ("%.2fx" % (mine["msgs_per_sec"] / other["msgs_per_sec"])
                  if mine and other and mine.get("msgs_per_sec") and other.get("msgs_per_sec") else "-")
        crowded = "\\*" if 1 + subscribers > cpus else ""
        lines.append("| %d | 1x%d%s | %s | %s | %s | %s | %s | %s | %s |" % (
            size, subscribers, crowded, per(mine), times(mine, my_one), per(other), times(other, other_one), versus,
            nanos(my_rtt["p50_ns"]) if my_rtt else "-", nanos(other_rtt["p50_ns"]) if other_rtt else "-"))
    lines += ["", "\\* more processes (1 + subscribers) than this machine's %d CPUs: they take turns on them." % cpus]
    return "\n".join(lines)


def fanout_brief(report):
    ours = fanout_rows(report, "shm-broadcast", "futex")
    theirs = fanout_rows(report, "iceoryx2", "event")
    size = min(size for size, _ in ours)
    one, two = ours[(size, 1)][0], ours[(size, 2)][0]
    other_two = theirs.get((size, 2), (None, None))[0]
    text = ("Fan-out (`docs/bench-fanout.json`, commit `%s`): one publisher to 2 subscriber processes on this "
            "%d-CPU machine moves %s %d-byte msgs/s to each subscriber, %.2fx its 1x1 rate (3 processes take turns "
            "on 2 CPUs; the target of 0.8x assumes a CPU per process)"
            % (report["git_sha"][:12], report["machine"]["cpus"], rate(two["msgs_per_sec"]), size,
               two["msgs_per_sec"] / one["msgs_per_sec"]))
    if other_two and other_two.get("msgs_per_sec"):
        text += ", %.2fx iceoryx2's publish-subscribe in the same rounds" % (two["msgs_per_sec"] / other_two["msgs_per_sec"])
    return text + "; the whole table is in `docs/performance.md`."


def async_pairs(report):
    """{size: figures} of the async rows and what they are compared with, from one run."""
    pairs = {}
    for size in sorted({row["msg_size"] for row in report["results"] if row["wait"] == "async"}):
        mine = find(report, "shm-spsc", "async", size, "throughput")
        blocking = find(report, "shm-spsc", "futex", size, "throughput")
        wake = find(report, "shm-spsc", "async", size, "wake_latency")
        futex = find(report, "shm-spsc", "futex", size, "wake_latency")
        pairs[size] = (mine, blocking, wake, futex)
    return pairs


def async_table(report):
    """The async rows: streaming against the blocking receiver, and the wake round trip against
    the raw eventfd ping-pong and the futex ring; the ratios are the medians (and min-max) of
    per-round ratios, each async row against its twin measured right before it."""
    limits = report["limits"]
    eventfd, futex_raw = limits["eventfd_asleep"]["p50_ns"], limits["futex_asleep"]["p50_ns"]

    def ratio(row, field):
        if row.get(field) is None:
            return "-"
        return "%.2fx (%.2f-%.2f)" % (row[field], row[field + "_min"], row[field + "_max"])

    lines = [header(report), "",
             "| size | async receiver msgs/s (min-max) | blocking receiver msgs/s (min-max) | async / blocking (min-max) "
             "| wake rtt p50: async (min-max) | futex ring | raw eventfd | raw futex | async / eventfd (min-max) "
             "| async / futex ring (min-max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size, (mine, blocking, wake, futex) in async_pairs(report).items():
        def per(row):
            return "%s (%s)" % (rate(row["msgs_per_sec"]), spread(row.get("msgs_per_sec_min"),
                                                                   row.get("msgs_per_sec_max"), rate))
        lines.append("| %d | %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |" % (
            size, per(mine), per(blocking), ratio(mine, "x_blocking"),
            nanos(wake["p50_ns"]), spread(wake.get("p50_ns_min"), wake.get("p50_ns_max"), nanos),
            nanos(futex["p50_ns"]), nanos(eventfd), nanos(futex_raw),
            ratio(wake, "x_raw_eventfd"), ratio(wake, "x_blocking")))
    lines += ["", "Targets (issue #18): streaming with an async receiver >= 0.9x the blocking receiver; the wake round "
              "trip of a sleeping async receiver <= 1.2x the raw eventfd ping-pong. Each side of a wake round trip is "
              "verifiably asleep before its message is sent (`docs/benchmarks.md`); the raw ping-pongs are measured "
              "the same way, with no payload (the run keeps only the median round of each). Each async row is "
              "measured right after its blocking twin in every round, and each ratio is the median (min-max) of the "
              "rounds' own ratios: against the twin, or against that round's raw eventfd ping-pong."]
    return "\n".join(lines)


def async_brief(report):
    parts = []
    for size, (mine, _, wake, _) in async_pairs(report).items():
        parts.append("%d B: streaming %.2fx the blocking receiver, wake round trip %.2fx the raw eventfd ping-pong"
                     % (size, mine["x_blocking"], wake["x_raw_eventfd"]))
    return ("An async receiver (`docs/bench-async.json`, commit `%s`, medians of %d rounds of per-round ratios): %s; "
            "the table is in `docs/event-loops.md`." % (report["git_sha"][:12], report["rounds"], "; ".join(parts)))


def async_thread(report, uring):
    """The async rows of a run on the driver thread, and its ratios beside the io_uring run's
    (each ratio taken within its own run)."""
    notes = " ".join(report.get("notes", []))
    if "driver thread" not in notes:
        sys.exit("docs/bench-async-thread.json is not a run on the driver thread (IPCRING_READINESS=thread)")
    lines = ["Readiness through the driver thread (`IPCRING_READINESS=thread`, as the run's note records).", "",
             async_table(report), "",
             "Beside the io_uring run (`docs/bench-async.json`, commit `%s`), each ratio within its own run:" %
             uring["git_sha"][:12], "",
             "| size | wake / raw eventfd: driver thread | wake / raw eventfd: io_uring "
             "| streaming / blocking: driver thread | streaming / blocking: io_uring |",
             "|---|---|---|---|---|"]
    theirs = async_pairs(uring)
    for size, (mine, _, wake, _) in async_pairs(report).items():
        other = theirs.get(size)
        if other is None:
            continue
        lines.append("| %d | %.2fx | %.2fx | %.2fx | %.2fx |" % (
            size, wake["x_raw_eventfd"], other[2]["x_raw_eventfd"], mine["x_blocking"], other[0]["x_blocking"]))
    return "\n".join(lines)


def python_rows(report):
    return {(row["transport"], row["msg_size"], row["pattern"]): row for row in report["rows"]}


def python_table(report):
    """The Python benchmark: every transport at every size, streaming and round trip."""
    rows = python_rows(report)
    transports = list(dict.fromkeys(row["transport"] for row in report["rows"]))
    sizes = sorted({row["msg_size"] for row in report["rows"]})

    def size_name(size):
        return "1 MiB" if size == 1 << 20 else "4 KiB" if size == 4096 else "%d B" % size

    lines = ["Run of `%s` at commit `%s` (Python %s), %d rounds; machine: %d CPUs, Linux %s." % (
        report["command"], report["git_sha"][:12], report["python"], report["rounds"], report["machine"]["cpus"],
        report["machine"]["kernel"]), ""]
    for pattern, title, unit in (("streaming", "Streaming, messages per second (median, min-max)", rate),
                                 ("round_trip", "Round trip, median microseconds (median of rounds, min-max)", None)):
        lines += ["**%s**" % title, "", "| transport | " + " | ".join(size_name(size) for size in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for transport in transports:
            cells = []
            for size in sizes:
                row = rows.get((transport, size, pattern))
                if row is None:
                    cells.append("-")
                elif unit:
                    cells.append("%s (%s-%s)" % (unit(row["median"]), unit(row["min"]), unit(row["max"])))
                else:
                    cells.append("%.1f (%.1f-%.1f)" % (row["median"], row["min"], row["max"]))
            lines.append("| %s | %s |" % (transport, " | ".join(cells)))
        lines.append("")
    targets = report["targets"]
    lines.append("Targets (issue #19): ipcring's copying calls stream 64 B messages at %.1fx multiprocessing.Queue "
                 "(target >= 10x); Python's zero-copy 1 MiB streaming runs at %.2fx the Rust zero-copy rate of the "
                 "same run (target >= 0.5x). Ratios of medians." % (targets["x_queue_64"], targets["x_rust_zero_copy_1mib"]))
    return "\n".join(lines)


def python_brief(report):
    targets = report["targets"]
    return ("From Python (`docs/bench-python.json`, commit `%s`): 64 B messages stream at %.1fx "
            "multiprocessing.Queue; zero-copy 1 MiB streaming from Python runs at %.2fx the Rust zero-copy rate "
            "measured in the same run; the table is in `docs/python.md`." % (
                report["git_sha"][:12], targets["x_queue_64"], targets["x_rust_zero_copy_1mib"]))


def bridge_rows(report):
    return {(row["transport"], row["msg_size"], row["pattern"]): row for row in report["rows"]}


def bridge_table(report):
    """The bridge benchmark: the Zenoh bridge and the TCP transport, streaming and round trip."""
    rows = bridge_rows(report)
    sizes = sorted({row["msg_size"] for row in report["rows"]})
    lines = ["Run of `%s` at commit `%s` (zenoh %s), %d interleaved rounds of %d messages and %d round trips; "
             "machine: %d CPUs, Linux %s." % (
                 report["command"], report["git_sha"][:12], report["zenoh"], report["rounds"], report["messages"],
                 report["round_trips"], report["machine"]["cpus"], report["machine"]["kernel"]), "",
             "| transport | size | streaming, msgs/s (median, min-max) | round trip, us (median of rounds, min-max) |",
             "|---|---|---|---|"]
    for transport in ("zenoh-bridge", "tcp"):
        for size in sizes:
            stream, trip = rows[(transport, size, "streaming")], rows[(transport, size, "round_trip")]
            lines.append("| %s | %d B | %s (%s-%s) | %.1f (%.1f-%.1f) |" % (
                transport, size, rate(stream["median"]), rate(stream["min"]), rate(stream["max"]),
                trip["median"], trip["min"], trip["max"]))
    lines.append("")
    for ratio in report["ratios"]:
        lines.append("- %d B: the bridge streams at %.2fx the TCP transport's rate; its round trip takes %.1fx as "
                     "long (ratios of medians in this run)." % (
                         ratio["msg_size"], ratio["streaming_bridge_over_tcp"], ratio["round_trip_bridge_over_tcp"]))
    return "\n".join(lines)


def bridge_brief(report):
    small = min(report["ratios"], key=lambda ratio: ratio["msg_size"])
    rows = bridge_rows(report)
    stream = rows[("zenoh-bridge", small["msg_size"], "streaming")]
    trip = rows[("zenoh-bridge", small["msg_size"], "round_trip")]
    return ("Between hosts (`docs/bench-bridge.json`, commit `%s`, loopback): the Zenoh bridge carries %d-byte "
            "messages ring to ring at %s msgs/s, %.2fx ipcring's TCP transport in the same run, with a %.0f us round "
            "trip (%.1fx TCP's); the table is in `docs/bridge.md`." % (
                report["git_sha"][:12], small["msg_size"], rate(stream["median"]), small["streaming_bridge_over_tcp"],
                trip["median"], small["round_trip_bridge_over_tcp"]))


def rendered(text, marker, body):
    begin = "<!-- %s:begin (python3 docs/render_bench.py) -->" % marker
    end = "<!-- %s:end -->" % marker
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + begin + "\n" + body + "\n" + end + text[stop:]


def main():
    report = json.load(open(RUN))
    bodies = {"bench-quick": quick(report), "bench-load": load(report), "bench-brief": brief(report),
              "bench-classic": classic(json.load(open(CLASSIC))),
              "targets-16": targets_16(json.load(open(SMALL)), json.load(open(BEFORE_16)),
                                       json.load(open(INSTRUCTIONS)), json.load(open(INSTRUCTIONS_BEFORE_16))),
              "fanout-17": fanout(json.load(open(FANOUT))), "fanout-brief": fanout_brief(json.load(open(FANOUT))),
              "async-18": async_table(json.load(open(ASYNC))), "async-brief": async_brief(json.load(open(ASYNC))),
              "async-thread-18": async_thread(json.load(open(ASYNC_THREAD)), json.load(open(ASYNC))),
              "python-19": python_table(json.load(open(PYTHON))), "python-brief": python_brief(json.load(open(PYTHON))),
              "bridge-20": bridge_table(json.load(open(BRIDGE))), "bridge-brief": bridge_brief(json.load(open(BRIDGE)))}
    check = len(sys.argv) > 1 and sys.argv[1] == "check"
    for path in dict.fromkeys(path for path, _ in TARGETS):
        text = open(path).read()
        new = text
        for marker in (marker for target, marker in TARGETS if target == path):
            new = rendered(new, marker, bodies[marker])
        if check and new != text:
            sys.exit("%s is not rendered from the stored runs: run python3 docs/render_bench.py" % path)
        if not check:
            open(path, "w").write(new)


if __name__ == "__main__":
    main()
