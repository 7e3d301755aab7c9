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

# A value cell: "126,831 tasks/s", "0.327 ms", "10.5 us / 6.9 us (cap ...)".
PART = re.compile(r"^([\d,]+(?:\.\d+)?)\s*(\S*)")


def parse(path):
    """Yields (mode, workload, [(number, unit)...], target, met, load_before)."""
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
            parts = []
            for text in cells[1].split("(")[0].split(" / "):
                m = PART.match(text.strip())
                if m:
                    parts.append((float(m.group(1).replace(",", "")), m.group(2)))
            if not parts:
                continue
            met = None if cells[3] == "" else cells[3] == "yes"
            yield mode, cells[0], parts, cells[2], met, load


def fmt(x, largest):
    """Thousands without decimals for big numbers, three decimals otherwise."""
    return f"{x:,.0f}" if largest >= 1000 else f"{x:.3f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    values = collections.OrderedDict()
    loads = []
    for path in sys.argv[1:]:
        load = ""
        for mode, workload, parts, target, met, load in parse(path):
            entry = values.setdefault((mode, workload), {"units": [u for _, u in parts], "target": target,
                                                         "xs": [], "met": []})
            entry["xs"].append([x for x, _ in parts])
            if met is not None:
                entry["met"].append(met)
        loads.append(load or "?")
    print(f"{len(sys.argv) - 1} runs; 1-minute load average before each: {', '.join(loads)}\n")
    print("| synchronous | workload | lowest | median | highest | target | runs that met it |")
    print("|-------------|----------|--------|--------|---------|--------|------------------|")
    for (mode, workload), e in values.items():
        columns = []
        for pick in (min, statistics.median, max):
            texts = []
            for i, unit in enumerate(e["units"]):
                xs = [run[i] for run in e["xs"] if len(run) > i]
                texts.append(f"{fmt(pick(xs), max(xs))} {unit}")
            columns.append(" / ".join(texts))
        met = f"{sum(e['met'])} of {len(e['met'])}" if e["met"] else ""
        print(f"| {mode} | {workload} | {' | '.join(columns)} | {e['target']} | {met} |")
    print()


if __name__ == "__main__":
    main()
