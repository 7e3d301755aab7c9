"""The Python side of bench/compare: no-op tasks written in Python
(bench/python_noop.py), embedded, and over NATS with a nats-server, a
`trellis-demo dispatcher` and two `python3 -m trellis worker` processes of
one handler thread each (as Celery's node has 2 prefork processes). Every
process is started and stopped by PID through compare_procs.Processes."""

import json
import os
import sys

from compare_procs import free_port, run_measured, wait_for_port, wait_for_text

BENCH = os.path.dirname(os.path.abspath(__file__))


def _env(build):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(build, "python"), BENCH,
                                                    env.get("PYTHONPATH")) if p)
    return env


def _rows(out_path):
    rows = []
    with open(out_path, errors="replace") as f:
        for text in f:
            if text.startswith("{"):
                rows.append(json.loads(text))
    return rows


def _run(run, argv, env, timeout, name):
    out = os.path.join(run.work_dir, name + ".out")
    err = os.path.join(run.work_dir, name + ".err")
    run.log("running " + " ".join(argv))
    status, rss, seconds = run_measured(argv, timeout, out, err, env=env)
    if status != 0:
        with open(err, errors="replace") as f:
            tail = [t.strip() for t in f.read().splitlines() if t.strip()][-1:]
        raise RuntimeError(f"exit {status}: {tail[0] if tail else 'no message'}")
    rows = _rows(out)
    for row in rows:
        row["process_peak_rss_kb"] = rss
    run.log(f"  {len(rows)} result(s) in {seconds:.1f} s")
    return rows


def python_side(run, procs, args):
    s = run.sizes
    module = os.path.join(args.build, "python", "trellis")
    if not os.path.isdir(module):
        run.notes.append("Trellis Python rows: not run (the build has no Python package; see docs/python.md).")
        return
    env = _env(args.build)
    script = os.path.join(BENCH, "python_noop.py")
    repeat = str(s["embedded_repeat"])
    try:
        for row in _run(run, [sys.executable, script, "embedded", "--tasks", str(s["noop"]), "--repeat", repeat,
                              "--db", os.path.join(run.work_dir, "python-embedded.db")],
                        env, 300, "python-embedded"):
            run.add(row)
    except Exception as e:
        run.failed("trellis-python-embedded", "noop", f"{type(e).__name__}: {e}")

    demo = os.path.join(args.build, "bin", "trellis-demo")
    started = []
    try:
        port = free_port()
        url = f"nats://127.0.0.1:{port}"
        nats = procs.start("python-nats-server", ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd",
                                                  os.path.join(run.work_dir, "python-jetstream")])
        started.append(nats)
        if not wait_for_port(port, 15):
            raise RuntimeError("nats-server did not start; see " + nats.err_path)
        disp = procs.start("python-dispatcher", [demo, "dispatcher", "--broker", url, "--db",
                                                 os.path.join(run.work_dir, "python-nats.db")])
        started.append(disp)
        if not wait_for_text(disp.err_path, "dispatcher running", 30, disp):
            raise RuntimeError("dispatcher did not start; see " + disp.err_path)
        for k in (1, 2):
            w = procs.start(f"python-worker{k}", [sys.executable, "-m", "trellis", "worker", "--app", "python_noop",
                                                  "--broker", url, "--concurrency", "1"], env=env, cwd=BENCH)
            started.append(w)
            if not wait_for_text(w.err_path, "worker running", 30, w):
                raise RuntimeError(f"Python worker {k} did not start; see {w.err_path}")
        for row in _run(run, [sys.executable, script, "client", "--broker", url, "--tasks", str(s["noop"]),
                              "--repeat", repeat, "--workers", "2"], env, 600, "python-client"):
            run.add(row)
    except Exception as e:
        run.failed("trellis-python-nats", "noop", f"{type(e).__name__}: {e}")
    finally:
        for p in reversed(started):
            procs.stop(p)
