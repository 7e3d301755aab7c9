#!/usr/bin/env bash
# Runs a cluster example as ctest does: a fresh nats-server with JetStream on a
# port the kernel picks, a `trellis dispatcher`, the example's worker binary,
# then `trellis submit WORKFLOW --wait`, whose outcome line must be SUCCESS
# with the expected result (or, with --client, a client program of its own,
# whose last line must hold the expected result). Every process is stopped by its PID on the way
# out, on failure too. Every wait is on an event (the ports file, a log line,
# an answer) with a deadline; the short pauses between looks only pace them.
#
# usage: run_cluster_example.sh TRELLIS NATS_SERVER WORKFLOW RESULT [options] -- WORKER [ARGS...]
#   TRELLIS       the generic `trellis` binary (dispatcher, submit, inspect)
#   NATS_SERVER   the nats-server binary
#   WORKFLOW      the workflow file to submit
#   RESULT        the JSON the outcome line's "result" must be, e.g. 1900
#   WORKER ...    the example's worker binary and its own arguments
# options:
#   --config FILE        every process reads FILE (--config) and finds the broker
#                        in TRELLIS_BROKER, which overrides the file's `broker`;
#                        without it, each one is given --broker URL
#   --namespace NS       the namespace `trellis inspect` asks in (default: default)
#   --expect-worker TEXT the worker's `trellis inspect` line must contain TEXT
#                        (repeatable), e.g. '"concurrency":2,'
#   --client PROGRAM     instead of `trellis submit`, run PROGRAM with the
#                        broker URL as its one argument: it must exit 0 and its
#                        last line must contain "result":RESULT (WORKFLOW: -)
set -euo pipefail

usage() {
  sed -n '/^# usage:/,/^[^#]/{/^#/p}' "$0" >&2
  exit 2
}
(($# >= 4)) || usage
trellis=$1 nats_server=$2 workflow=$3 expected_result=$4
shift 4
config="" namespace="" expect_worker=() client=""
while (($#)) && [[ $1 != -- ]]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --namespace) namespace=$2; shift 2 ;;
    --expect-worker) expect_worker+=("$2"); shift 2 ;;
    --client) client=$2; shift 2 ;;
    *) usage ;;
  esac
done
(($# >= 2)) || usage
shift  # --
worker_cmd=("$@")

start_deadline_s=20  # for each process to come up
submit_deadline_s=60 # for the workflow to finish

dir=$(mktemp -d "${TMPDIR:-/tmp}/trellis-cluster-example.XXXXXX")
pids=()  # started processes, stopped last-started first
failed=1

show_logs() {
  local log
  for log in "$dir"/*.log "$dir"/*.out; do
    [[ -f $log ]] || continue
    echo "---- ${log##*/}" >&2
    tail -n 40 "$log" >&2
  done
}

# Stops one process by PID: SIGTERM, then SIGKILL if it has not exited
# within 10 s.
stop() {
  local pid=$1 deadline=$((SECONDS + 10))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i
  if ((failed)); then
    show_logs
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop "${pids[i]}"
  done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

fail() {
  echo "run_cluster_example: $*" >&2
  exit 1
}

# Waits until `$2` is a line of file `$3`, while process $1 lives.
wait_for_line() {
  local pid=$1 text=$2 file=$3 deadline=$((SECONDS + start_deadline_s))
  until grep -qF -- "$text" "$file" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid ended before printing '$text' ($file)"
    ((SECONDS < deadline)) || fail "no '$text' in $file within ${start_deadline_s} s"
    sleep 0.05
  done
}

# 1. nats-server on 127.0.0.1, port chosen by the kernel, read back from its
#    ports file (<executable>_<pid>.ports).
"$nats_server" -a 127.0.0.1 -p -1 -js -sd "$dir/jetstream" --ports_file_dir "$dir" >"$dir/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
ports_file="$dir/${nats_server##*/}_${nats_pid}.ports"
deadline=$((SECONDS + start_deadline_s))
until [[ -s $ports_file ]] && grep -q 'nats://' "$ports_file"; do
  kill -0 "$nats_pid" 2>/dev/null || fail "nats-server ended at start"
  ((SECONDS < deadline)) || fail "nats-server wrote no ports file within ${start_deadline_s} s"
  sleep 0.05
done
url=$(grep -o 'nats://[^"]*' "$ports_file" | head -n 1)

# How the processes find the broker.
if [[ -n $config ]]; then
  export TRELLIS_BROKER=$url
  connect=(--config "$config")
else
  connect=(--broker "$url")
fi

# 2. The dispatcher, then the worker; each says "<role> running" when ready.
"$trellis" dispatcher "${connect[@]}" --db "$dir/cluster.db" >"$dir/dispatcher.out" 2>"$dir/dispatcher.log" &
dispatcher_pid=$!
pids+=("$dispatcher_pid")
wait_for_line "$dispatcher_pid" "dispatcher running" "$dir/dispatcher.log"

"${worker_cmd[@]}" "${connect[@]}" >"$dir/worker.out" 2>"$dir/worker.log" &
worker_pid=$!
pids+=("$worker_pid")
wait_for_line "$worker_pid" "worker running" "$dir/worker.log"

# 3. The worker as `trellis inspect` sees it: its line names its PID.
if ((${#expect_worker[@]})); then
  deadline=$((SECONDS + start_deadline_s))
  line=""
  while [[ -z $line ]]; do
    ((SECONDS < deadline)) || fail "trellis inspect did not show worker $worker_pid within ${start_deadline_s} s"
    line=$("$trellis" inspect --broker "$url" --namespace "${namespace:-default}" 2>>"$dir/inspect.log" |
      grep -F "\"role\":\"worker\"" | grep -F ":$worker_pid\"" || true)
  done
  echo "worker: $line"
  for text in "${expect_worker[@]}"; do
    [[ $line == *"$text"* ]] || fail "the worker's inspect line lacks $text"
  done
fi

# 4. Submit and wait; the last line of stdout is the outcome line.
status=0
if [[ -n $client ]]; then
  timeout "$submit_deadline_s" "$client" "$url" >"$dir/client.out" 2>"$dir/client.log" || status=$?
  cat "$dir/client.out"
  ((status == 0)) || fail "$client exited $status"
  [[ $(tail -n 1 "$dir/client.out") == *"\"result\":$expected_result,"* ]] ||
    fail "expected \"result\":$expected_result in the client's last line"
  failed=0
  exit 0
fi
timeout "$submit_deadline_s" "$trellis" submit "$workflow" "${connect[@]}" --wait >"$dir/submit.out" \
  2>"$dir/submit.log" || status=$?
outcome=$(tail -n 1 "$dir/submit.out")
echo "outcome: $outcome"
((status == 0)) || fail "trellis submit exited $status"
[[ $outcome == *"\"state\":\"SUCCESS\",\"result\":$expected_result,\"error\":null}" ]] ||
  fail "expected SUCCESS with result $expected_result"
failed=0
