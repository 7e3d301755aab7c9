#!/usr/bin/env python3
"""Sorts the on-CPU samples of a `perf script` dump into Trellis' areas.

Reads `perf script -F comm,tid,time,ip,sym,dso` output (with call chains)
on stdin and the benchmark's `--print-windows` lines from the file named
on the command line; keeps only samples inside those windows, and prints
markdown: how busy each thread was, the share of samples per area, and
the hottest leaf functions.

A sample belongs to the area of the innermost frame that names one, so
malloc called from the envelope decoder counts as decoding, and a kernel
pwrite called from SQLite counts as SQLite.

Usage: perf_areas.py WINDOWS_FILE FREQUENCY_HZ < perf-script-output
"""

import collections
import re
import sys

# (area, pattern over "symbol dso"), tried in order on each frame.
AREAS = [
    ("SQLite (statements, B-tree, WAL writes)", r"libsqlite3|sqlite_store::|\bsqlite3_"),
    ("msgpack decode (envelopes, values)",
     r"trellis::detail::decode\b|^decode |decode_map|check_msgpack|value_from_msgpack|unpack_checked|"
     r"unpack_from_string|reader::|field_reader|msgpack::\S*(context|parse|unpack|create_object|zone)"),
    ("msgpack encode (envelopes, values)",
     r"trellis::detail::encode\b|^encode |pack_any|pack_map|pack_string|pack_to_string|pack_key|string_sink|"
     r"pack_column|msgpack::\S*packer"),
    ("canvas (to_value, parse, task check)",
     r"canvas_from_value|canvas_parser|trellis::to_value|check_tasks_known|flatten_members|trellis::canvas::|"
     r"trellis::group|trellis::chain\b|trellis::chord|trellis::signature"),
    ("workflow graph", r"workflow_graph::"),
    ("task runner (worker side)", r"run_task_message|handler_threads|outcome_for|task_context"),
    ("in-process transport (queues, locks)", r"inproc_transport"),
    ("dispatcher bookkeeping (envelope fields, maps, metrics)",
     r"dispatcher_logic|metrics::|active_workflow|^(process|ready|dispatch|apply_outcome|on_events|submit|flush|"
     r"task_envelope|now_ms) "),
    ("engine facade (submit, handles, completion)",
     r"engine_core|completion_board|completion_slot|workflow_handle|trellis::engine::"),
    ("CAF messaging (mailboxes, scheduling)", r"libcaf_core|\bcaf::"),
    ("benchmark harness", r"run_once|median_run|bench_engine|\blatency\(|\bthroughput\("),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in AREAS]

# Where a sample's work came from: the outermost frame that names an entry
# point (frames are read root first here).
ENTRIES = [
    ("dispatcher: submit (parse canvas, insert, build graph, encode all tasks)",
     re.compile(r"dispatcher_logic::submit|lambda\(trellis::detail::submit_atom")),
    ("dispatcher: outcome events (decode, apply, upsert)",
     re.compile(r"dispatcher_logic::on_events|^on_events |apply_outcome|lambda\(trellis::detail::event_atom")),
    ("dispatcher: flush (COMMIT, publish, notify)", re.compile(r"dispatcher_logic::flush|^flush |lambda\(trellis::detail::flush_atom")),
    ("dispatcher: status queries", re.compile(r"dispatcher_logic::status|^status |lambda\(trellis::detail::status_atom")),
    ("handler threads (decode task, run, encode outcome)", re.compile(r"handler_threads|run_task_message")),
    ("main thread: engine::submit (to_value, check, encode, ask)",
     re.compile(r"engine_core::submit|trellis::engine::submit|engine_core::handle_for")),
    ("main thread: waiting for the result", re.compile(r"wait_for")),
]

# Tried in order: a handler thread also runs the dispatcher's event sink
# (a lambda defined inside dispatcher()), so it is recognised first.
ROLES = [
    ("handler thread", re.compile(r"handler_threads|run_task_message")),
    ("main (submit + wait)", re.compile(r"run_once|median_run|bench_engine|\blatency\(|\bthroughput\(")),
    ("dispatcher", re.compile(r"dispatcher_logic|\bdispatcher\(")),
    ("CAF scheduler", re.compile(r"caf::scheduler|worker<caf::policy")),
]

HEADER = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s*$")
FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def read_windows(path):
    windows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "window":
                windows.append((parts[1], float(parts[2]), float(parts[3])))
    return windows


def samples(stream):
    """Yields (tid, time, [(symbol, dso), ...] leaf first)."""
    tid, time, frames = None, None, []
    for line in stream:
        if not line.strip():
            if tid is not None:
                yield tid, time, frames
            tid, time, frames = None, None, []
            continue
        m = HEADER.match(line)
        if m and tid is None:
            tid, time = int(m.group(2)), float(m.group(3))
            continue
        m = FRAME.match(line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
            frames.append((sym, m.group(3)))
    if tid is not None:
        yield tid, time, frames


def area_of(frames):
    for sym, dso in frames:
        text = sym + " " + dso
        for name, pattern in COMPILED:
            if pattern.search(text):
                return name
    if frames and all(dso.startswith("[kernel") for _, dso in frames):
        return "kernel (scheduling, futex, page faults)"
    return "unattributed (libc, libstdc++)"


def entry_of(frames):
    for sym, dso in reversed(frames):
        text = sym + " " + dso
        for name, pattern in ENTRIES:
            if pattern.search(text):
                return name
    return "other (CAF, kernel, harness)"


def role_of(frames_seen):
    for name, pattern in ROLES:
        if any(pattern.search(f) for f in frames_seen):
            return name
    return "other"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    windows = read_windows(sys.argv[1])
    freq = float(sys.argv[2])
    if not windows:
        sys.exit("perf_areas.py: no 'window' lines in " + sys.argv[1])
    total_window = sum(end - begin for _, begin, end in windows)

    areas = collections.Counter()
    entries = collections.Counter()
    entry_areas = collections.defaultdict(collections.Counter)
    leaves = collections.Counter()
    per_thread = collections.Counter()
    thread_frames = collections.defaultdict(set)
    kept = 0
    for tid, time, frames in samples(sys.stdin):
        if not any(begin <= time <= end for _, begin, end in windows):
            continue
        kept += 1
        area = area_of(frames)
        entry = entry_of(frames)
        areas[area] += 1
        entries[entry] += 1
        entry_areas[entry][area] += 1
        if frames:
            leaves[frames[0][0][:100]] += 1
        per_thread[tid] += 1
        for sym, dso in frames:
            if len(thread_frames[tid]) < 4000:
                thread_frames[tid].add(sym + " " + dso)
    if kept == 0:
        sys.exit("perf_areas.py: no samples inside the windows")

    print(f"{len(windows)} timed window(s), {total_window * 1000:.0f} ms in all; "
          f"{kept} on-CPU samples at {freq:.0f} Hz inside them\n")
    print("| thread | role | busy (share of the window) |")
    print("|--------|------|----------------------------|")
    for tid, n in per_thread.most_common(6):
        busy = n / (freq * total_window)
        print(f"| {tid} | {role_of(thread_frames[tid])} | {busy * 100:.0f}% |")
    print()
    print("| area | share of on-CPU samples |")
    print("|------|------------------------|")
    for name, n in areas.most_common():
        print(f"| {name} | {n * 100 / kept:.1f}% |")
    print()
    print("| entry point | share | its top areas |")
    print("|-------------|-------|---------------|")
    for name, n in entries.most_common():
        top = ", ".join(f"{a} {c * 100 / n:.0f}%" for a, c in entry_areas[name].most_common(3))
        print(f"| {name} | {n * 100 / kept:.1f}% | {top} |")
    print()
    print("| hottest leaf function | share |")
    print("|-----------------------|-------|")
    for sym, n in leaves.most_common(12):
        print(f"| `{sym.replace('|', '/')}` | {n * 100 / kept:.1f}% |")
    print()


if __name__ == "__main__":
    main()
