"""The Celery side of bench/compare: Redis and Celery workers (started and
stopped by PID), and the workloads, measured from this process as the
client. Each result is a dict shaped like a line of the benchmark JSON
contract, with "system": "celery"."""

import json
import os
import signal
import subprocess
import sys
import time
import types

from compare_procs import children_of, free_port, wait_for_port

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's, which has python3-celery


class CeleryRig:
    """Redis on a loopback port and the Celery workers this run needs."""

    def __init__(self, procs, work_dir):
        self.procs = procs
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.redis = None
        self.workers = []
        self.app = None
        self.tasks = None

    def start_redis(self):
        # Snapshots off: they would fork and write while the benchmark runs.
        # This is Redis without persistence, as Celery users commonly run it.
        self.redis = self.procs.start("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self.work_dir, "--daemonize", "no", "--protected-mode", "yes"])
        self.redis_log = self.redis.out_path
        if not wait_for_port(self.port, 15):
            raise RuntimeError("redis-server did not start; see " + self.redis.err_path)
        os.environ["COMPARE_REDIS_URL"] = self.url
        if BENCH_DIR not in sys.path:
            sys.path.insert(0, BENCH_DIR)
        from celery_app import tasks  # after COMPARE_REDIS_URL is set
        self.tasks = tasks
        self.app = tasks.app
        import redis
        self.client = redis.Redis.from_url(self.url)

    def start_worker(self, name, concurrency):
        """A prefork worker node with `concurrency` processes; returns its main
        process once it is ready to consume."""
        env = dict(os.environ, COMPARE_REDIS_URL=self.url, PYTHONPATH=BENCH_DIR)
        proc = self.procs.start(f"celery-{name}", [
            PYTHON, "-m", "celery", "-A", "celery_app.tasks", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--hostname", f"{name}@compare", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env, cwd=BENCH_DIR)
        # WARNING, not INFO: INFO logs every task and its result, which would
        # slow Celery down. Ready is when the node answers a ping.
        deadline = time.monotonic() + 60
        while not self.app.control.ping(destination=[f"{name}@compare"], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker {name} did not start; see {proc.err_path}")
        self.workers.append(proc)
        return proc

    def stop_workers(self):
        for w in self.workers:
            self.procs.stop(w)
        self.workers = []

    def run_client(self, workload, args, timeout):
        """Runs one workload in a fresh client process (this file's main) and
        returns its result line. A fresh process each time, because Celery's
        client keeps a Redis subscription per task it sent until the result
        object is collected: after a chord of 10,000, the next workload in the
        same process first drains 10,000 stale notifications."""
        out = subprocess.run([PYTHON, os.path.abspath(__file__), self.url, workload, json.dumps(args)],
                             capture_output=True, text=True, timeout=timeout + 30, cwd=BENCH_DIR)
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if out.returncode != 0 or not lines:
            tail = [l for l in out.stderr.splitlines() if l.strip()][-1:]
            raise RuntimeError(tail[0] if tail else f"client exited with {out.returncode}")
        return json.loads(lines[-1])

    def reset(self):
        """Empties Redis between workloads: queues, results, counters."""
        self.client.flushdb()

    def stop(self):
        self.stop_workers()
        # Celery's result objects unsubscribe from Redis when collected, which
        # after this point fails and is only noise at interpreter exit.
        default_hook = sys.unraisablehook

        def quiet_results(info):
            if "AsyncResult.__del__" not in repr(info.object):
                default_hook(info)

        sys.unraisablehook = quiet_results
        if self.redis is not None:
            self.procs.stop(self.redis)
            self.redis = None

    def version(self):
        return self.client.info("server").get("redis_version", "?")

    def memory_peak_bytes(self):
        return int(self.client.info("memory").get("used_memory_peak", 0))


def _line(workload, tasks, seconds, **extra):
    row = {"system": "celery", "workload": workload, "tasks": tasks, "seconds": seconds}
    row.update(extra)
    return row


def noop(rig, n, timeout):
    from celery import group
    t0 = time.perf_counter()
    result = group(rig.tasks.noop.s() for _ in range(n)).apply_async()
    values = result.get(timeout=timeout, propagate=True)
    seconds = time.perf_counter() - t0
    if len(values) != n:
        raise RuntimeError(f"noop: {len(values)} results instead of {n}")
    return _line("noop", n, seconds, tasks_per_s=n / seconds)


def results(rig, n, timeout):
    from celery import group
    t0 = time.perf_counter()
    values = group(rig.tasks.echo.s(i) for i in range(n)).apply_async().get(timeout=timeout)
    seconds = time.perf_counter() - t0
    if values != list(range(n)):
        raise RuntimeError("results: the results differ from the arguments")
    return _line("results", n, seconds, tasks_per_s=n / seconds)


def latency(rig, runs, warmup, timeout):
    echo = rig.tasks.echo
    deadline = time.monotonic() + timeout
    for i in range(warmup):
        echo.delay(i).get(timeout=30)
    samples = []
    for i in range(runs):
        t0 = time.perf_counter()
        if echo.delay(i).get(timeout=30) != i:
            raise RuntimeError("latency: wrong result")
        samples.append((time.perf_counter() - t0) * 1000.0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"latency: {len(samples)} round trips in {timeout} s")
    samples.sort()
    return _line("latency", runs, sum(samples) / 1000.0, p50_ms=percentile(samples, 50),
                 p99_ms=percentile(samples, 99))


def stored_result(result, timeout):
    """Waits until the task's result is stored in Redis (polled every 10 ms)
    and returns it. Used for chords and chains instead of `.get()`: the client
    has subscribed to a notification per header task, and `.get()` on a
    chord of 10,000 spent minutes handling them after the chord had finished,
    which would charge Celery's client, not the chord, to Celery."""
    deadline = time.monotonic() + timeout
    while True:
        state = result.state
        if state == "SUCCESS":
            return result.result
        if state == "FAILURE":
            raise RuntimeError(f"task {result.id} failed: {result.result!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no result for {result.id} after {timeout} s (state {state})")
        time.sleep(0.01)


def chord(rig, n, timeout):
    from celery import chord as celery_chord
    t0 = time.perf_counter()
    value = stored_result(celery_chord(rig.tasks.noop.s() for _ in range(n))(rig.tasks.chord_body.s()), timeout)
    seconds = time.perf_counter() - t0
    if value != n:
        raise RuntimeError(f"chord: body saw {value} results instead of {n}")
    return _line("chord", n, seconds)


def chain(rig, n, timeout):
    from celery import chain as celery_chain
    t0 = time.perf_counter()
    stored_result(celery_chain(rig.tasks.noop.s() for _ in range(n)).apply_async(), timeout)
    return _line("chain", n, time.perf_counter() - t0)


def payload(rig, n, size, timeout):
    from celery import group
    arg = "x" * size
    t0 = time.perf_counter()
    values = group(rig.tasks.echo.s(arg) for _ in range(n)).apply_async().get(timeout=timeout)
    seconds = time.perf_counter() - t0
    if len(values) != n or any(v != arg for v in values):
        raise RuntimeError("payload: a result differs from its argument")
    return _line("payload", n, seconds, tasks_per_s=n / seconds, payload_bytes=size)


def percentile(sorted_samples, p):
    """Nearest rank, as trellis_bench_embedded computes it."""
    if not sorted_samples:
        return 0.0
    rank = max(1, -(-len(sorted_samples) * p // 100))
    return sorted_samples[min(len(sorted_samples), int(rank)) - 1]


def queued_task_ids(rig):
    """Task ids Redis still holds: waiting in the queue, or taken by a worker
    and not acked (kombu's `unacked` hash, restored after visibility_timeout)."""
    ids = set()
    for raw in rig.client.lrange("celery", 0, -1):
        ids.add(json.loads(raw)["headers"]["id"])
    for raw in rig.client.hvals("unacked"):
        ids.add(json.loads(raw)[0]["headers"]["id"])
    return ids


def kill_run(rig, variant, tasks, sleep_ms, kill_after, horizon, log):
    """Submits `tasks` sleep_ms tasks, SIGKILLs a worker process `kill_after`
    seconds later and counts, `horizon` seconds after the kill, which tasks are
    done, late (still held by Redis, so they run later) or lost (neither).

    variant "child": one worker node of 2 prefork processes; one child is
    killed while it runs a task. variant "node": two nodes of 1 process each
    (2 processes in all, like Trellis's two worker processes); one whole node,
    its main process and its child, is killed."""
    rig.stop_workers()
    rig.reset()
    if variant == "child":
        main = rig.start_worker("kill1", 2)
        victims = None
    else:
        main = rig.start_worker("kill1", 1)
        rig.start_worker("kill2", 1)
    results = [rig.tasks.sleep_ms.delay(sleep_ms) for _ in range(tasks)]
    ids = [r.id for r in results]
    time.sleep(kill_after)
    if variant == "child":
        victims = children_of(main.pid)[:1]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        what = f"prefork child {victims} of node kill1"
    else:
        victims = [main.pid] + children_of(main.pid)
        os.killpg(main.pid, signal.SIGKILL)
        what = f"node kill1 (main process and child, PIDs {victims})"
    killed_at = time.monotonic()
    log(f"celery kill ({variant}): SIGKILL {what} {kill_after} s after submitting {tasks} tasks")
    done = set()
    while time.monotonic() - killed_at < horizon:
        done = {i for i in ids if rig.app.AsyncResult(i).state == "SUCCESS"}
        if len(done) == len(ids):
            break
        time.sleep(0.5)
    held = queued_task_ids(rig) - done
    runs = {k.decode(): int(v) for k, v in rig.client.hgetall(rig.tasks.RUNS_KEY).items()}
    pending = [i for i in ids if i not in done]
    late = [i for i in pending if i in held]
    lost = [i for i in pending if i not in held]
    failed = sum(1 for i in lost if rig.app.AsyncResult(i).state == "FAILURE")
    twice = sum(1 for i in ids if runs.get(i, 0) > 1)
    rig.stop_workers()
    return {"system": "celery", "workload": "kill", "variant": variant, "tasks": tasks, "done": len(done),
            "late": len(late), "lost": len(lost), "lost_as_failure": failed, "ran_twice": twice,
            "seconds_after_kill": round(time.monotonic() - killed_at, 1), "killed": what}


def queued(rig, n, timeout):
    """`n` noop published while no worker runs, then a node of 2 prefork
    processes started and timed until Redis holds none of them. Reports what
    the queued tasks cost Redis in memory and the worker's peak RSS."""
    from compare_procs import peak_rss_kb
    before = int(rig.client.info("memory")["used_memory"])
    published = rig.run_client("publish_noop", [n], timeout)
    queued_bytes = int(rig.client.info("memory")["used_memory"]) - before
    worker = rig.start_worker("drain", 2)
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while rig.client.llen("celery") > 0 or rig.client.hlen("unacked") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"queued: {rig.client.llen('celery')} tasks still queued after {timeout} s")
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    rss = [peak_rss_kb(pid) for pid in [worker.pid] + children_of(worker.pid)]
    return _line("queued", n, seconds, tasks_per_s=n / seconds, workers=2,
                 worker_peak_rss_kb=sum(r for r in rss if r), redis_bytes_per_queued_task=queued_bytes / n,
                 publish_tasks_per_s=n / published["seconds"],
                 broker_peak_rss_kb=int(rig.client.info("memory")["used_memory_peak"]) // 1024)


def publish_noop(rig, n):
    """Publishes `n` noop (results stored, as usual) and returns."""
    t0 = time.perf_counter()
    for _ in range(n):
        rig.tasks.noop.apply_async()
    return _line("publish_noop", n, time.perf_counter() - t0)


CLIENT_WORKLOADS = {"noop": noop, "results": results, "latency": latency, "chord": chord, "chain": chain,
                    "payload": payload, "publish_noop": publish_noop}


def client_main(argv):
    """`compare_celery.py REDIS_URL WORKLOAD ARGS_JSON`: one workload as a
    fresh Celery client; prints its result line."""
    url, workload, args = argv[1], argv[2], json.loads(argv[3])
    os.environ["COMPARE_REDIS_URL"] = url
    sys.path.insert(0, BENCH_DIR)
    import redis
    from celery_app import tasks
    rig = types.SimpleNamespace(tasks=tasks, app=tasks.app, client=redis.Redis.from_url(url))
    print(json.dumps(CLIENT_WORKLOADS[workload](rig, *args)), flush=True)
    # No interpreter teardown: Celery's result objects would unsubscribe from
    # Redis one by one in their finalizers, which is not part of any workload.
    os._exit(0)


if __name__ == "__main__":
    client_main(sys.argv)


def pubsub_overflows(redis_log):
    """How often Redis closed a client for exceeding its output buffer limit
    (32 MiB for pub/sub): Celery's client receives every result it waits for
    through pub/sub, so large results overflow it."""
    try:
        with open(redis_log, errors="replace") as f:
            return sum(1 for line in f if "overcoming of output buffer limits" in line)
    except OSError:
        return 0
