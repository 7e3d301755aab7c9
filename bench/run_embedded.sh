#!/usr/bin/env bash
# Runs the embedded benchmark and prints two markdown tables:
#   1. the timings (trellis_bench_embedded itself, no tracer attached);
#   2. fsync + fdatasync system calls per task, counted by strace with one
#      process per workload and mode. Only the counts are kept: a traced call
#      stops the process, so its timings are not the untraced ones (the
#      benchmark times its syncs itself, in the first table).
#
# Usage: bench/run_embedded.sh [--bin PATH] [--out FILE] [--runs N] [-- BENCH ARGS...]
#   --bin   the benchmark binary (default: build-bench/bin/trellis_bench_embedded
#           next to this script's repository)
#   --out   also write everything printed to FILE
#   --runs  run the timing part N times (default 1) and end with a table of the
#           lowest, median and highest value of every row (summarize_runs.py):
#           on a shared machine one run is one sample of its neighbours' load
#   BENCH ARGS go to the timing run only (e.g. --repeat 3, --dir /var/tmp).
#
# strace counts every sync of the process, including the few that create the
# store's schema when an engine opens a new file; the per-task figure divides
# by all tasks the process ran, warm-up included.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${here}/../build-bench/bin/trellis_bench_embedded"
out=""
runs=1
bench_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "run_embedded.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
if [[ ! -x "${bin}" ]]; then
  echo "run_embedded.sh: no benchmark binary at ${bin}; build the target trellis_bench_embedded" >&2
  echo "  (cmake -B build-bench -DCMAKE_BUILD_TYPE=Release -DTRELLIS_BUILD_BENCH=ON)" >&2
  exit 2
fi
if ! command -v strace >/dev/null; then
  echo "run_embedded.sh: strace is not installed (apt-get install strace)" >&2
  exit 2
fi
if [[ -n "${out}" ]]; then
  exec > >(tee "${out}")
fi

# Same directory for both runs: fsync costs depend on the file system.
dir_args=()
for ((i = 0; i < ${#bench_args[@]}; i++)); do
  if [[ "${bench_args[i]}" == "--dir" ]]; then
    dir_args=(--dir "${bench_args[i + 1]}")
  fi
done

run_dir="$(mktemp -d)"
trace_file="${run_dir}/strace.txt"
bench_out="${run_dir}/bench.md"
trap 'rm -rf "${run_dir}"' EXIT

for ((run = 1; run <= runs; run++)); do
  "${bin}" "${bench_args[@]}" | tee "${run_dir}/run-${run}.md"
done
if ((runs > 1)); then
  echo "### Spread over the ${runs} runs"
  echo
  python3 -B "${here}/summarize_runs.py" "${run_dir}"/run-*.md
fi

# strace filters in the kernel with seccomp-bpf when it can, which keeps the
# traced run close to the untraced one.
strace_cmd=(strace -f -c -e trace=fsync,fdatasync)
if strace --seccomp-bpf -f -e trace=fsync true >/dev/null 2>&1; then
  strace_cmd=(strace --seccomp-bpf -f -c -e trace=fsync,fdatasync)
fi

echo "### fsync system calls per task (strace, one process per row)"
echo
echo "| workload   | synchronous | fsync | fdatasync | tasks   | fsync+fdatasync per task |"
echo "|------------|-------------|-------|-----------|---------|--------------------------|"
for mode in FULL NORMAL; do
  for workload in throughput latency chord chain; do
    "${strace_cmd[@]}" -o "${trace_file}" "${bin}" --synchronous "${mode}" --workload "${workload}" \
      "${dir_args[@]}" >"${bench_out}"
    tasks="$(sed -n 's/^tasks run in this process: \([0-9]*\)$/\1/p' "${bench_out}")"
    # strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall.
    read -r fsyncs fdatasyncs < <(awk '
      $NF == "fsync"     { f = $4 }
      $NF == "fdatasync" { d = $4 }
      END { printf "%d %d\n", f, d }' "${trace_file}")
    per_task="$(awk -v a="${fsyncs}" -v b="${fdatasyncs}" -v n="${tasks}" 'BEGIN { printf "%.5f", (a + b) / n }')"
    printf "| %-10s | %-11s | %5d | %9d | %7d | %24s |\n" \
      "${workload}" "${mode}" "${fsyncs}" "${fdatasyncs}" "${tasks}" "${per_task}"
  done
done
echo
