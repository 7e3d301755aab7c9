"""The Trellis side of bench/compare: the two benchmark binaries (their JSON
lines, see the contract in bench/README.md) and the SIGKILL workload, run
with trellis-demo processes this module starts and stops by PID."""

import json
import os
import signal
import sqlite3
import subprocess
import time

from compare_procs import free_port, run_measured, wait_for_port, wait_for_text


def run_bench(binary, args, timeout, work_dir, name, log):
    """Runs a benchmark binary with --json; returns (its JSON lines as dicts,
    an error text or None, peak RSS of the process in KiB)."""
    out = os.path.join(work_dir, name + ".out")
    err = os.path.join(work_dir, name + ".err")
    argv = [binary, "--json"] + args
    log("running " + " ".join(argv))
    status, rss_kb, seconds = run_measured(argv, timeout, out, err)
    lines = []
    with open(out, errors="replace") as f:
        for text in f:
            text = text.strip()
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except json.JSONDecodeError:
                    pass
    error = None
    if status is None:
        error = f"timed out after {timeout} s"
    elif status != 0:
        with open(err, errors="replace") as f:
            tail = [t.strip() for t in f.read().splitlines() if t.strip()][-1:]
        error = f"exit {status}: {tail[0] if tail else 'no message'}"
    log(f"  {len(lines)} result(s) in {seconds:.1f} s" + (f"; {error}" if error else ""))
    return lines, error, rss_kb


def sleep_group(path, tasks, sleep_ms):
    with open(path, "w") as f:
        json.dump({"group": [{"task": "sleep_ms", "args": [sleep_ms]} for _ in range(tasks)]}, f)


def node_counts(cli, workflow_id, db):
    """(done, not done, failed) sleep_ms nodes of a workflow, from `status`."""
    out = subprocess.run([cli, "status", workflow_id, "--db", db], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("status failed: " + out.stderr.strip())
    status = json.loads(out.stdout.strip().splitlines()[-1])
    nodes = [n for n in status["nodes"] if n["task"] == "sleep_ms"]
    done = sum(1 for n in nodes if n["state"] == "SUCCESS")
    failed = sum(1 for n in nodes if n["state"] in ("FAILURE", "REVOKED"))
    return done, len(nodes) - done - failed, failed, status["state"]


def count_until(cli, workflow_id, db, tasks, killed_at, horizon):
    """Polls the store until every task is done or `horizon` seconds after the
    kill; a task not done then is late if the store still owes it (JetStream or
    `resume` runs it later), lost if it failed or is missing."""
    done, pending, failed, state = 0, tasks, 0, "?"
    while True:
        try:
            done, pending, failed, state = node_counts(cli, workflow_id, db)
        except (RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired):
            pass
        if done == tasks or time.monotonic() - killed_at >= horizon:
            break
        time.sleep(0.5)
    missing = tasks - done - pending - failed
    return {"done": done, "late": pending, "lost": failed + max(0, missing), "workflow_state": state,
            "seconds_after_kill": round(time.monotonic() - killed_at, 1)}


def kill_nats(procs, demo, cli, work_dir, tasks, sleep_ms, kill_after, horizon, ack_wait_ms, log):
    """nats-server, one dispatcher and two workers (1 handler thread each, like
    Celery's 2 prefork processes); a group of `tasks` sleep_ms; SIGKILL of one
    worker process `kill_after` s after the submission."""
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    store = os.path.join(work_dir, "nats-kill.db")
    started = []
    try:
        nats = procs.start("nats-server", ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd",
                                           os.path.join(work_dir, "jetstream")])
        started.append(nats)
        if not wait_for_port(port, 15):
            raise RuntimeError("nats-server did not start; see " + nats.err_path)
        disp = procs.start("trellis-dispatcher", [demo, "dispatcher", "--broker", url, "--db", store,
                                                  "--ack-wait-ms", str(ack_wait_ms)])
        started.append(disp)
        if not wait_for_text(disp.err_path, "dispatcher running", 30, disp):
            raise RuntimeError("dispatcher did not start; see " + disp.err_path)
        workers = []
        for k in (1, 2):
            w = procs.start(f"trellis-worker{k}", [demo, "worker", "--broker", url, "--concurrency", "1",
                                                   "--ack-wait-ms", str(ack_wait_ms)])
            started.append(w)
            workers.append(w)
            if not wait_for_text(w.err_path, "worker running", 30, w):
                raise RuntimeError(f"worker {k} did not start; see {w.err_path}")
        flow = os.path.join(work_dir, "kill-group.json")
        sleep_group(flow, tasks, sleep_ms)
        sub = subprocess.run([cli, "submit", flow, "--broker", url], capture_output=True, text=True, timeout=60)
        if sub.returncode != 0:
            raise RuntimeError("submit failed: " + sub.stderr.strip())
        workflow_id = json.loads(sub.stdout.strip().splitlines()[-1])["id"]
        time.sleep(kill_after)
        os.kill(workers[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        log(f"trellis-nats kill: SIGKILL worker 1 (PID {workers[0].pid}) {kill_after} s after submitting "
            f"{tasks} tasks; AckWait {ack_wait_ms} ms")
        counts = count_until(demo, workflow_id, store, tasks, killed_at, horizon)
        row = {"system": "trellis-nats", "workload": "kill", "tasks": tasks,
               "killed": f"worker process 1 of 2 (PID {workers[0].pid})"}
        row.update(counts)
        return row
    finally:
        for p in reversed(started):
            procs.stop(p)


def kill_embedded(procs, demo, work_dir, tasks, sleep_ms, kill_after, horizon, log):
    """`trellis-demo run` (2 handler threads) of a group of `tasks` sleep_ms,
    SIGKILLed `kill_after` s in. Embedded, the worker is the whole process, so
    what follows is the embedded recovery: `trellis-demo resume` on the same
    store, started at once (as a service manager would restart the program)."""
    store = os.path.join(work_dir, "embedded-kill.db")
    flow = os.path.join(work_dir, "kill-group.json")
    sleep_group(flow, tasks, sleep_ms)
    run = procs.start("trellis-run", [demo, "run", flow, "--db", store, "--concurrency", "2"])
    resume = None
    try:
        time.sleep(kill_after)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        killed_at = time.monotonic()
        log(f"trellis-embedded kill: SIGKILL trellis-demo run (PID {run.pid}) {kill_after} s after starting "
            f"{tasks} tasks, then trellis-demo resume")
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT id FROM workflows").fetchall()
        if len(rows) != 1:
            raise RuntimeError(f"expected one workflow in the store, found {len(rows)}")
        workflow_id = rows[0][0]
        resume = procs.start("trellis-resume", [demo, "resume", "--db", store, "--concurrency", "2"])
        resume.wait(timeout=horizon)
        row = {"system": "trellis-embedded", "workload": "kill", "tasks": tasks,
               "killed": "the process (embedded: dispatcher and workers in one), then `resume`"}
        row.update(count_until(demo, workflow_id, store, tasks, killed_at, horizon))
        return row
    except subprocess.TimeoutExpired:
        row = {"system": "trellis-embedded", "workload": "kill", "tasks": tasks, "killed": "the process"}
        row.update(count_until(demo, workflow_id, store, tasks, killed_at, 0))
        return row
    finally:
        procs.stop(run)
        if resume is not None:
            procs.stop(resume)
