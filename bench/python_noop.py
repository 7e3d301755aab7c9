#!/usr/bin/python3
"""No-op tasks written in Python, embedded or over NATS: the Python rows of
bench/compare (bench/README.md). Prints one JSON line per measurement, in
the contract of the C++ benchmarks:

  {"system": "trellis-python-embedded"|"trellis-python-nats", "workload": "noop",
   "tasks": N, "seconds": S, "tasks_per_s": R, "workers": K, ...}

  python_noop.py embedded --tasks N [--repeat 3] [--db PATH] [--concurrency 2]
  python_noop.py client --broker URL --tasks N [--repeat 3] [--workers K]

`embedded` runs an App with the no-op task in this process; `client`
submits to a cluster whose workers are `python3 -m trellis worker --app
python_noop` (the driver starts them). Each measurement is one group of N
no-op tasks from submit to its result, the median of --repeat runs, after a
warm-up group of 100. The interpreter must find the trellis package
(build/python on PYTHONPATH, or scripts/bootstrap.sh's trellis.pth).
"""

import argparse
import json
import os
import statistics
import sys
import time

import trellis

app = trellis.App()


@app.task
def py_noop():
    return None


def measure(submit, tasks, repeat):
    """The median seconds of `repeat` groups of `tasks` no-ops, after a warm-up."""
    submit(100)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = submit(tasks)
        runs.append(time.perf_counter() - started)
        if len(result) != tasks:
            raise SystemExit(f"a group of {tasks} gave {len(result)} results")
    return statistics.median(runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("embedded", "client"))
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--db", default=":memory:", help="embedded: the SQLite store (a real disk for honest fsyncs)")
    p.add_argument("--synchronous", default="FULL")
    p.add_argument("--concurrency", type=int, default=2, help="embedded: handler threads")
    p.add_argument("--broker", help="client: the cluster's NATS URL")
    p.add_argument("--namespace", default="default")
    p.add_argument("--workers", type=int, default=2, help="client: worker processes (reported only)")
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    noop = trellis.signature("py_noop")

    if args.mode == "embedded":
        app.engine_options.update(db=args.db, concurrency=args.concurrency, synchronous=args.synchronous)
        with app:
            seconds = measure(lambda n: app.run(trellis.group([noop] * n), timeout=args.timeout), args.tasks,
                              args.repeat)
        row = {"system": "trellis-python-embedded", "concurrency": args.concurrency, "synchronous": args.synchronous}
    else:
        client = trellis.Client(broker=args.broker, namespace=args.namespace)
        seconds = measure(lambda n: client.submit(trellis.group([noop] * n)).wait(args.timeout), args.tasks,
                          args.repeat)
        row = {"system": "trellis-python-nats", "workers": args.workers}
    row.update({"workload": "noop", "tasks": args.tasks, "seconds": round(seconds, 4),
                "tasks_per_s": round(args.tasks / seconds, 1), "python": sys.version.split()[0], "pid": os.getpid()})
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
