#!/usr/bin/env bash
# Profiles one workload of the embedded benchmark with perf and prints, as
# markdown, where the on-CPU time inside the timed windows goes: per thread,
# per area (SQLite, msgpack, canvas, graph, CAF, ...) and per entry point.
#
# Usage: bench/profile_embedded.sh [--bin PATH] [--workload W] [--synchronous M]
#                                  [--freq HZ] [--keep DIR] [-- BENCH ARGS...]
#   --bin          benchmark binary; build it with debug info so inlined frames
#                  have names (default: build-prof/bin/trellis_bench_embedded):
#                    cmake -S . -B build-prof -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#                      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O3 -g -DNDEBUG" \
#                      -DTRELLIS_BUILD_BENCH=ON -DTRELLIS_BUILD_TESTS=OFF
#   --workload     throughput (default), latency, chord or chain
#   --synchronous  FULL (default) or NORMAL
#   --freq         sampling frequency in Hz (default 1999)
#   --keep         keep perf.data and the windows file in DIR
#
# Only samples inside the benchmark's timed windows count (it prints them with
# --print-windows and perf records CLOCK_MONOTONIC time stamps), so engine
# start-up, canvas building and shutdown stay out. The samples are on-CPU
# only: time spent waiting for fdatasync or for another thread does not show.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${here}/../build-prof/bin/trellis_bench_embedded"
workload="throughput"
mode="FULL"
freq=1999
keep=""
bench_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --workload) workload="$2"; shift 2 ;;
    --synchronous) mode="$2"; shift 2 ;;
    --freq) freq="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "profile_embedded.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
if [[ ! -x "${bin}" ]]; then
  echo "profile_embedded.sh: no benchmark binary at ${bin} (see --bin in the header of this script)" >&2
  exit 2
fi
if ! command -v perf >/dev/null; then
  echo "profile_embedded.sh: perf is not installed (apt-get install linux-perf)" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# DWARF call graphs: the system libraries (libc, libstdc++, SQLite, CAF) are
# built without frame pointers, so frame-pointer chains would break in them.
perf record -q -k CLOCK_MONOTONIC -F "${freq}" --call-graph dwarf,16384 -o "${work}/perf.data" -- \
  "${bin}" --synchronous "${mode}" --workload "${workload}" --print-windows "${bench_args[@]}" \
  2>"${work}/windows" >"${work}/bench.md"

echo "### Profile: ${workload}, synchronous=${mode} ($(basename "${bin}"))"
echo
grep -E '^\| (workload|group|one-task|chord|chain)|^\|-' "${work}/bench.md" || true
echo
perf script -i "${work}/perf.data" -F comm,tid,time,ip,sym,dso 2>/dev/null |
  python3 -B "${here}/perf_areas.py" "${work}/windows" "${freq}"

if [[ -n "${keep}" ]]; then
  mkdir -p "${keep}"
  cp "${work}/perf.data" "${work}/windows" "${keep}/"
fi
