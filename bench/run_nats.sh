#!/usr/bin/env bash
# Runs the cluster benchmark (trellis_bench_nats) several times and prints one
# markdown table with the lowest, median and highest value of every
# measurement: on a shared machine one run is one sample of its neighbours'
# load, and the cluster has five processes competing for the cores.
#
# Usage: bench/run_nats.sh [--bin PATH] [--runs N] [--out FILE] [-- BENCH ARGS...]
#   --bin   the benchmark binary (default: build/bin/trellis_bench_nats next to
#           this script's repository; build it with -DTRELLIS_BUILD_BENCH=ON)
#   --runs  how many runs (default 3)
#   --out   also write the JSON lines of every run to FILE
#   BENCH ARGS go to every run (e.g. --workload noop --workers 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${here}/../build/bin/trellis_bench_nats"
runs=3
out=""
bench_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "run_nats.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
if [[ ! -x "${bin}" ]]; then
  echo "run_nats.sh: no benchmark binary at ${bin}; build the target trellis_bench_nats" >&2
  echo "  (cmake -B build -DCMAKE_BUILD_TYPE=Release -DTRELLIS_BUILD_BENCH=ON)" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
for ((i = 1; i <= runs; i++)); do
  echo "run ${i} of ${runs} (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "${bin}" --json "${bench_args[@]}" >>"${work}/lines.json" 2>"${work}/run-${i}.md"
done
if [[ -n "${out}" ]]; then
  cp "${work}/lines.json" "${out}"
fi

python3 -B - "${work}/lines.json" "${runs}" <<'EOF'
import json, statistics, sys

rows = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    key = (m["workers"], m["workload"], m.get("payload_bytes", 0), m["tasks"])
    rows.setdefault(key, []).append(m)

print(f"| workers | workload | tasks | value | lowest | median | highest | runs |")
print(f"|---------|----------|-------|-------|--------|--------|---------|------|")
for (workers, workload, payload, tasks), ms in sorted(rows.items()):
    if "tasks_per_s" in ms[0] and workload not in ("chord", "chain"):
        field, unit = "tasks_per_s", "tasks/s"
    elif "p50_ms" in ms[0]:
        field, unit = "p50_ms", "ms p50"
    else:
        field, unit = "seconds", "s"
    values = sorted(m[field] for m in ms)
    name = workload + (f" ({payload} B)" if payload else "")
    fmt = (lambda v: f"{v:,.0f}") if field == "tasks_per_s" else (lambda v: f"{v:.3f}")
    print(f"| {workers} | {name} | {tasks:,} | {unit} | {fmt(values[0])} | {fmt(statistics.median(values))} "
          f"| {fmt(values[-1])} | {len(values)} of {sys.argv[2]} |")
EOF
