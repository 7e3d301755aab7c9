#!/usr/bin/env python3
"""Summarizes several outputs of trellis_bench_embedded as one markdown table.

For each measured row and synchronous mode: the lowest, median and highest
value over the runs, and how many runs met the target. Rows are matched by
their workload text, so the runs must use the same sizes.

Usage: summarize_runs.py OUTPUT_FILE...
"""

import collections
import re
import statistics
import sys

NUMBER = re.compile(r"^([\d,]+(?:\.\d+)?)\s*(\S+)")


def parse(path):
    """Yields (mode, workload, number, unit, target, met, load_before)."""
    mode = None
    load = ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("- load average before:"):
                load = line.split(":", 1)[1].split()[0]
            m = re.match(r"^### synchronous=(\w+)", line)
            if m:
                mode = m.group(1)
                continue
            if mode is None or not line.startswith("|") or line.startswith("|--"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4 or cells[0] == "workload":
                continue
            m = NUMBER.match(cells[1])
            if not m:
                continue
            met = None if cells[3] == "" else cells[3] == "yes"
            yield mode, cells[0], float(m.group(1).replace(",", "")), m.group(2), cells[2], met, load


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    values = collections.OrderedDict()
    loads = []
    for path in sys.argv[1:]:
        load = ""
        for mode, workload, number, unit, target, met, load in parse(path):
            entry = values.setdefault((mode, workload), {"unit": unit, "target": target, "xs": [], "met": []})
            entry["xs"].append(number)
            if met is not None:
                entry["met"].append(met)
        loads.append(load or "?")
    print(f"{len(sys.argv) - 1} runs; 1-minute load average before each: {', '.join(loads)}\n")
    print("| synchronous | workload | lowest | median | highest | target | runs that met it |")
    print("|-------------|----------|--------|--------|---------|--------|------------------|")
    for (mode, workload), e in values.items():
        xs = e["xs"]
        fmt = (lambda x: f"{x:,.0f}") if max(xs) >= 1000 else (lambda x: f"{x:.3f}")
        met = f"{sum(e['met'])} of {len(e['met'])}" if e["met"] else ""
        print(f"| {mode} | {workload} | {fmt(min(xs))} {e['unit']} | {fmt(statistics.median(xs))} {e['unit']} | "
              f"{fmt(max(xs))} {e['unit']} | {e['target']} | {met} |")
    print()


if __name__ == "__main__":
    main()
