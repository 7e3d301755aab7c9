#!/usr/bin/python3
"""bench/compare's driver: the same workloads on Celery (prefork, 2 processes,
msgpack, Redis broker and result backend) and on Trellis (embedded, and over
NATS with 2 worker processes), plus no-op tasks written in Python on Trellis
(compare_python.py); a table on stdout with the ratios, and
docs/benchmarks.md and docs/benchmarks.png generated from the run.

Run it through bench/compare, which installs the Debian packages and builds
the binaries first. Every process it starts is stopped by its PID, also on an
error or Ctrl-C."""

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare_celery  # noqa: E402
import compare_python  # noqa: E402
import compare_report  # noqa: E402
import compare_trellis  # noqa: E402
from compare_procs import Processes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = {
    "noop": 20_000, "results": 5_000, "latency": 1_000, "warmup": 100,
    "chords": [1_000, 10_000], "chains": [100, 1_000],
    "kill_tasks": 200, "kill_sleep_ms": 100, "kill_after": 2.0, "kill_horizon": 40.0,
    "payloads": [(100, 2_000), (10_240, 2_000), (1_048_576, 100)],
    "queued": 1_000_000, "queued_more": 2_000_000, "celery_queued": 20_000, "embedded_repeat": 3,
}
QUICK = {
    "noop": 2_000, "results": 500, "latency": 100, "warmup": 10,
    "chords": [100, 1_000], "chains": [10, 100],
    "kill_tasks": 40, "kill_sleep_ms": 100, "kill_after": 1.0, "kill_horizon": 10.0,
    "payloads": [(100, 200), (10_240, 200), (1_048_576, 10)],
    "queued": 10_000, "queued_more": 20_000, "celery_queued": 2_000, "embedded_repeat": 1,
}


class Run:
    """What this run measured, and its log."""

    def __init__(self, sizes, work_dir):
        self.sizes = sizes
        self.work_dir = work_dir
        self.results = []      # contract-shaped dicts, plus "error" for a failed workload
        self.notes = []        # what did not run and why
        self.started = time.monotonic()

    def log(self, text):
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", flush=True)

    def add(self, row):
        self.results.append(row)

    def failed(self, system, workload, error, **extra):
        row = {"system": system, "workload": workload, "error": error}
        row.update(extra)
        self.results.append(row)
        self.log(f"  {system} {workload} {extra or ''}: {error}")


def celery_side(run, procs, args):
    s = run.sizes
    rig = compare_celery.CeleryRig(procs, run.work_dir)
    rig.start_redis()
    run.redis_version = rig.version()
    timeout = args.celery_timeout

    def measure(workload, args, **extra):
        rig.reset()
        run.log(f"celery {workload} {args} {extra or ''}".rstrip())
        try:
            row = rig.run_client(workload, args, timeout)
            row.update(extra)
            run.add(row)
        except Exception as e:  # a failed or timed-out workload is reported, and the worker restarted
            run.failed("celery", workload, f"{type(e).__name__}: {e}".strip(), **extra)
            rig.stop_workers()
            rig.reset()
            rig.start_worker("main", extra.get("workers", 2))

    try:
        rig.start_worker("main", 2)
        measure("noop", [s["noop"], timeout], workers=2)
        run.redis_peak_after_noop = rig.memory_peak_bytes()
        measure("results", [s["results"], timeout])
        measure("latency", [s["latency"], s["warmup"], timeout])
        for n in s["chords"]:
            measure("chord", [n, timeout])
        for n in s["chains"]:
            measure("chain", [n, timeout])
        for size, n in s["payloads"]:
            measure("payload", [n, size, timeout])
        # Queued: published while no worker runs, then drained by a new one.
        rig.stop_workers()
        rig.reset()
        run.log(f"celery queued {s['celery_queued']}")
        try:
            run.add(compare_celery.queued(rig, s["celery_queued"], timeout))
        except Exception as e:
            run.failed("celery", "queued", f"{type(e).__name__}: {e}")
        rig.stop_workers()
        rig.reset()
        rig.start_worker("one", 1)
        measure("noop", [s["noop"], timeout], workers=1)
        rig.stop_workers()
        for variant in ("node", "child"):
            rig.reset()
            run.log(f"celery kill ({variant})")
            try:
                run.add(compare_celery.kill_run(rig, variant, s["kill_tasks"], s["kill_sleep_ms"], s["kill_after"],
                                                s["kill_horizon"], run.log))
            except Exception as e:
                run.failed("celery", "kill", f"{type(e).__name__}: {e}", variant=variant)
                rig.stop_workers()
    finally:
        rig.stop()
        overflows = compare_celery.pubsub_overflows(getattr(rig, "redis_log", ""))
        if overflows:
            run.notes.append(
                f"Redis closed a Celery client's connection {overflows} time(s) for exceeding the pub/sub output "
                "buffer limit (32 MiB, Redis's default): the client gets every result it waits for through "
                "pub/sub, and 1 MB results overflow it. Celery reconnects and reads the results again; a payload "
                "row that timed out is most likely this.")


def embedded_side(run, procs, args):
    s = run.sizes
    binary = os.path.join(args.build, "bin", "trellis_bench_embedded")
    if not os.access(binary, os.X_OK):
        run.notes.append(f"Trellis embedded: not run ({os.path.relpath(binary, REPO)} is missing).")
        return
    # The median of 3 runs of each workload (latency pools the samples of 3
    # engines): one run of a 20,000-task group lasts a fraction of a second
    # and varies by tens of percent on a busy machine.
    common = ["--synchronous", "FULL", "--dir", run.work_dir]

    def bench(name, extra, timeout, tag=None, repeat=s["embedded_repeat"]):
        # 2 handler threads, as Celery has 2 prefork processes, unless the run says otherwise.
        threads = [] if "--concurrency" in extra else ["--concurrency", "2"]
        argv = common + ["--repeat", str(repeat)] + threads + extra
        lines, error, rss = compare_trellis.run_bench(binary, argv, timeout, run.work_dir, name, run.log)
        for line in lines:
            line["process_peak_rss_kb"] = rss
            if tag:
                line.update(tag)
            run.add(line)
        if error:
            run.failed("trellis-embedded", name, error, process_peak_rss_kb=rss, **(tag or {}))
        return lines, error, rss

    core = ["--workload", "noop", "--workload", "results", "--workload", "latency", "--workload", "chord",
            "--workload", "chain", "--noop", str(s["noop"]), "--results", str(s["results"]),
            "--latency-runs", str(s["latency"]), "--warmup", str(s["warmup"])]
    for n in s["chords"]:
        core += ["--chord", str(n)]
    for n in s["chains"]:
        core += ["--chain", str(n)]
    bench("embedded-core", core, 300, {"concurrency": 2})
    for size, n in s["payloads"]:
        bench(f"embedded-payload-{size}", ["--workload", "payload", "--payload-count", str(n),
                                            "--payload-bytes", str(size)], 180)
    bench("embedded-concurrency-1", ["--workload", "noop", "--noop", str(s["noop"]), "--concurrency", "1"], 120,
          {"concurrency": 1})
    # 10x and 100x the no-op group, in one submission each: what breaks first.
    for factor in (10, 100):
        bench(f"embedded-noop-{factor}x", ["--workload", "noop", "--noop", str(s["noop"] * factor)], 120,
              {"scale": factor}, repeat=1)


def nats_side(run, procs, args):
    s = run.sizes
    binary = os.path.join(args.build, "bin", "trellis_bench_nats")
    if not os.access(binary, os.X_OK):
        run.notes.append(f"Trellis over NATS, benchmark workloads: not run ({os.path.relpath(binary, REPO)} "
                         "does not exist in this build).")
        return

    def bench(name, extra, timeout):
        lines, error, rss = compare_trellis.run_bench(binary, extra, timeout, run.work_dir, name, run.log)
        for line in lines:
            run.add(line)
        if error:
            run.failed("trellis-nats", name, error)

    core = ["--workers", "2", "--workload", "noop", "--workload", "results", "--workload", "latency",
            "--workload", "chord", "--workload", "chain", "--noop", str(s["noop"]), "--results", str(s["results"]),
            "--latency-runs", str(s["latency"])]
    for n in s["chords"]:
        core += ["--chord", str(n)]
    for n in s["chains"]:
        core += ["--chain", str(n)]
    bench("nats-core", core, 300)
    bench("nats-workers-1", ["--workers", "1", "--workload", "noop", "--noop", str(s["noop"])], 180)
    for size, n in s["payloads"]:
        bench(f"nats-payload-{size}", ["--workers", "2", "--workload", "payload", "--payload-count", str(n),
                                       "--payload-bytes", str(size)], 180)
    # Twice the backlog as well: the dispatcher's peak must not grow with the queue.
    for n in (s["queued"], s["queued_more"]):
        bench(f"nats-queued-{n}", ["--workers", "2", "--workload", "queued", "--queued", str(n)], args.queued_timeout)


def kill_side(run, procs, args):
    s = run.sizes
    demo = os.path.join(args.build, "bin", "trellis-demo")
    cli = os.path.join(args.build, "bin", "trellis")
    if not (os.access(demo, os.X_OK) and os.access(cli, os.X_OK)):
        run.notes.append("Trellis SIGKILL workload: not run (trellis-demo or trellis is missing).")
        return
    run.log("trellis-nats kill")
    try:
        run.add(compare_trellis.kill_nats(procs, demo, cli, run.work_dir, s["kill_tasks"], s["kill_sleep_ms"],
                                          s["kill_after"], s["kill_horizon"], args.ack_wait_ms, run.log))
    except Exception as e:
        run.failed("trellis-nats", "kill", f"{type(e).__name__}: {e}")
    run.log("trellis-embedded kill")
    try:
        run.add(compare_trellis.kill_embedded(procs, demo, run.work_dir, s["kill_tasks"], s["kill_sleep_ms"],
                                              s["kill_after"], s["kill_horizon"], run.log))
    except Exception as e:
        run.failed("trellis-embedded", "kill", f"{type(e).__name__}: {e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(REPO, "build"), help="build directory with bin/ (default: build)")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the script (not for the docs)")
    p.add_argument("--doc", help="markdown to write (default: docs/benchmarks.md; with --quick, none)")
    p.add_argument("--plot", help="PNG to write (default: docs/benchmarks.png; with --quick, none)")
    p.add_argument("--systems", default="celery,embedded,nats,kill,python",
                   help="comma-separated parts to run: celery, embedded, nats, kill, python (default: all)")
    p.add_argument("--celery-timeout", type=float, default=150.0, help="seconds per Celery workload")
    p.add_argument("--queued-timeout", type=float, default=300.0, help="seconds for each NATS queued run (1M, then 2M)")
    p.add_argument("--ack-wait-ms", type=int, default=5000, help="AckWait of the NATS kill workload")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores)")
    p.add_argument("--command", help=argparse.SUPPRESS)  # how bench/compare was called, for the doc
    args = p.parse_args()
    args.build = os.path.abspath(args.build)
    if args.doc is None and not args.quick:
        args.doc = os.path.join(REPO, "docs", "benchmarks.md")
    if args.plot is None and not args.quick:
        args.plot = os.path.join(REPO, "docs", "benchmarks.png")
    parts = set(args.systems.split(","))

    # On a real disk next to the build, not tmpfs: SQLite's fsyncs must cost what they cost.
    work_dir = tempfile.mkdtemp(prefix="compare-", dir=args.build)
    run = Run(QUICK if args.quick else FULL, work_dir)
    run.command = args.command or " ".join(["bench/compare.py"] + sys.argv[1:])
    run.commit = compare_report.commit_of(REPO)
    run.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run.load_before = os.getloadavg()
    run.redis_version = None
    run.ack_wait_ms = args.ack_wait_ms
    procs = Processes(work_dir)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    run.log(f"work directory {work_dir}")
    ok = False
    try:
        for part, fn in (("embedded", embedded_side), ("nats", nats_side), ("kill", kill_side),
                         ("python", compare_python.python_side), ("celery", celery_side)):
            if part in parts:
                try:
                    fn(run, procs, args)
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    traceback.print_exc()
                    run.notes.append(f"{part}: stopped by an error: {type(e).__name__}: {e}")
            else:
                run.notes.append(f"{part}: not run (--systems {args.systems}).")
        ok = True
    except KeyboardInterrupt:
        run.log("interrupted: stopping every process this run started")
    finally:
        procs.stop_all()
    run.load_after = os.getloadavg()
    run.seconds = time.monotonic() - run.started
    with open(os.path.join(work_dir, "results.json"), "w") as f:
        json.dump(run.results, f, indent=1)
    if not ok:
        return 130
    report = compare_report.Report(run, REPO, args.build)
    print()
    print(report.table_text())
    print()
    print(report.goals_text())
    if args.doc:
        report.write_doc(args.doc, os.path.relpath(args.plot, os.path.dirname(args.doc)) if args.plot else None)
        run.log(f"wrote {os.path.relpath(args.doc, REPO)}")
    if args.plot:
        report.write_plot(args.plot)
        run.log(f"wrote {os.path.relpath(args.plot, REPO)}")
    if args.keep:
        run.log(f"kept {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
