"""bench/compare's output: the table with ratios, the goals, docs/benchmarks.md
and docs/benchmarks.png, all from one run's results (nothing typed by hand)."""

import os
import platform
import subprocess

SYSTEMS = ("celery", "trellis-embedded", "trellis-nats")
COLORS = {"celery": "tab:green", "trellis-embedded": "tab:blue", "trellis-nats": "tab:orange"}
NAMES = {"celery": "Celery", "trellis-embedded": "Trellis embedded", "trellis-nats": "Trellis NATS",
         "trellis-python-embedded": "Trellis Python embedded", "trellis-python-nats": "Trellis Python NATS"}
# Tasks written in Python (bench/compare_python.py), each against Celery's no-op row.
PYTHON_SYSTEMS = ("trellis-python-embedded", "trellis-python-nats")
PYTHON_GOAL = 20
# Rows of the noop workload that are the main configuration: Celery and Trellis
# NATS with 2 worker processes, Trellis embedded with 2 handler threads.
MAIN = {"workers": 2, "concurrency": 2}


def thousands(x):
    return f"{x:,.0f}"


def fmt(value, unit):
    if value is None:
        return "not run"
    if unit == "tasks/s":
        return thousands(value) if value >= 100 else f"{value:.1f}"
    if unit == "ms":
        return f"{value:.3f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio_text(r):
    if r is None:
        return "-"
    return f"{r:.1f}x" if r < 100 else f"{r:,.0f}x"


# What this command writes itself: a run that regenerates them is not "dirty".
OWN_OUTPUTS = ("docs/benchmarks.md", "docs/benchmarks.png")


def commit_of(repo):
    """The commit the run measured, with -dirty when the tree had changes
    other than this command's own outputs."""
    head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "--", "."]
                            + [":!" + path for path in OWN_OUTPUTS], capture_output=True, text=True)
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


class Report:
    def __init__(self, run, repo, build):
        self.run = run
        self.repo = repo
        self.build = build
        s = run.sizes
        self.rows = [
            (f"no-op tasks, {s['noop']:,} (tasks/s)", "noop", s["noop"], "tasks_per_s", "tasks/s", "high", MAIN),
            (f"tasks with results, {s['results']:,} (tasks/s)", "results", s["results"], "tasks_per_s", "tasks/s",
             "high", {}),
            (f"round trip p50, {s['latency']:,} in a row (ms)", "latency", None, "p50_ms", "ms", "low", {}),
            (f"round trip p99, {s['latency']:,} in a row (ms)", "latency", None, "p99_ms", "ms", "low", {}),
        ]
        for n in s["chords"]:
            self.rows.append((f"chord of {n:,} + body (s)", "chord", n, "seconds", "s", "low", {}))
        for n in s["chains"]:
            self.rows.append((f"chain of {n:,} (s)", "chain", n, "seconds", "s", "low", {}))

    # -- lookups --------------------------------------------------------------

    def find(self, system, workload, tasks=None, match=None, errors=False):
        for row in self.run.results:
            if row.get("system") != system or row.get("workload") != workload:
                continue
            if ("error" in row) != errors:
                continue
            if tasks is not None and row.get("tasks") not in (tasks, None):
                continue
            if any(k in row and row[k] != v for k, v in (match or {}).items()):
                continue
            return row
        return None

    def value(self, system, workload, tasks, field, match=None):
        row = self.find(system, workload, tasks, match)
        return None if row is None else row.get(field)

    def cell(self, system, workload, tasks, field, unit, match=None):
        v = self.value(system, workload, tasks, field, match)
        if v is not None:
            return fmt(v, unit)
        if self.find(system, workload, None, errors=True) is not None:
            return "failed (notes)"
        return "not run"

    def ratio(self, system, workload, tasks, field, better, match=None):
        c = self.value("celery", workload, tasks, field, match)
        t = self.value(system, workload, tasks, field, match)
        if not c or not t:
            return None
        return t / c if better == "high" else c / t

    def kill(self, system, variant=None):
        for row in self.run.results:
            if row.get("system") == system and row.get("workload") == "kill" and "error" not in row:
                if variant is None or row.get("variant") == variant:
                    return row
        return None

    def kill_cell(self, system, variant=None):
        k = self.kill(system, variant)
        if k is None:
            return "failed (notes)" if self.find(system, "kill", errors=True) else "not run"
        return f"{k['done']} / {k['late']} / {k['lost']}"

    # -- the table ------------------------------------------------------------

    def table(self):
        header = ["workload", "Celery", "Trellis embedded", "Trellis NATS", "embedded vs Celery", "NATS vs Celery"]
        lines = [header]
        for label, workload, tasks, field, unit, better, match in self.rows:
            lines.append([label] + [self.cell(s, workload, tasks, field, unit, match) for s in SYSTEMS] +
                         [ratio_text(self.ratio(s, workload, tasks, field, better, match))
                          for s in ("trellis-embedded", "trellis-nats")])
        s = self.run.sizes
        lines.append([f"SIGKILL of a worker: {s['kill_tasks']} x {s['kill_sleep_ms']} ms, done / late / lost "
                      f"{s['kill_horizon']:.0f} s later", self.kill_cell("celery", "node"),
                      self.kill_cell("trellis-embedded"), self.kill_cell("trellis-nats"), "-", "-"])
        return lines

    @staticmethod
    def markdown(lines, align=None):
        widths = [max(len(str(l[i])) for l in lines) for i in range(len(lines[0]))]
        out = []
        for n, l in enumerate(lines):
            out.append("| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(l)) + " |")
            if n == 0:
                out.append("|" + "|".join("-" * (w + 2) if not align or align[i] == "l" else "-" * (w + 1) + ":"
                                          for i, w in enumerate(widths)) + "|")
        return "\n".join(out)

    def table_text(self):
        return self.markdown(self.table(), ["l"] + ["r"] * 5) + \
            "\n\nRatios: how many times faster Trellis is (throughput over Celery's, or Celery's time over Trellis's)."

    # -- goals ------------------------------------------------------------------

    def goals(self):
        s = self.run.sizes
        out = []

        def goal(text, ok, detail):
            verdict = "not run" if ok is None else ("met" if ok else "**not met**")
            out.append([text, verdict, detail])

        for system, factor in (("trellis-embedded", 50), ("trellis-nats", 20)):
            r = self.ratio(system, "noop", s["noop"], "tasks_per_s", "high", MAIN)
            goal(f"{NAMES[system]}: no-op throughput >= {factor}x Celery's", None if r is None else r >= factor,
                 ratio_text(r))
        for system in PYTHON_SYSTEMS:
            r = self.ratio(system, "noop", s["noop"], "tasks_per_s", "high", MAIN)
            goal(f"{NAMES[system]}: no-op throughput >= {PYTHON_GOAL}x Celery's",
                 None if r is None else r >= PYTHON_GOAL, ratio_text(r))
        for system in ("trellis-embedded", "trellis-nats"):
            c = self.value("celery", "latency", None, "p50_ms")
            t = self.value(system, "latency", None, "p50_ms")
            goal(f"{NAMES[system]}: round trip p50 below Celery's", None if c is None or t is None else t < c,
                 "not run" if c is None or t is None else f"{t:.3f} ms vs {c:.3f} ms")
        for system in ("trellis-nats", "trellis-embedded"):
            k = self.kill(system)
            goal(f"{NAMES[system]}: no task lost or late {s['kill_horizon']:.0f} s after the SIGKILL",
                 None if k is None else (k["late"] == 0 and k["lost"] == 0),
                 "not run" if k is None else f"done {k['done']}, late {k['late']}, lost {k['lost']}")
        return out

    def goals_text(self):
        return self.markdown([["goal (issues 4 and 15)", "verdict", "measured"]] + self.goals())

    def python_table(self):
        """No-op tasks written in Python beside Celery's (whose tasks are Python too)."""
        s = self.run.sizes
        n = s["noop"]
        lines = [["system", f"no-op tasks, {n:,} (tasks/s)", "vs Celery"]]
        lines.append([NAMES["celery"] + " (2 prefork processes)", self.cell("celery", "noop", n, "tasks_per_s",
                                                                            "tasks/s", MAIN), "-"])
        for system, how in (("trellis-python-embedded", " (2 handler threads, one process)"),
                            ("trellis-python-nats", " (2 worker processes)")):
            lines.append([NAMES[system] + how, self.cell(system, "noop", n, "tasks_per_s", "tasks/s", MAIN),
                          ratio_text(self.ratio(system, "noop", n, "tasks_per_s", "high", MAIN))])
        return self.markdown(lines, ["l", "r", "r"])

    # -- the document -------------------------------------------------------------

    def machine(self):
        def read(path):
            try:
                with open(path) as f:
                    return f.read()
            except OSError:
                return ""

        cpu = next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines()
                    if l.startswith("model name")), "unknown")
        mem_kb = next((int(l.split()[1]) for l in read("/proc/meminfo").splitlines() if l.startswith("MemTotal")), 0)

        def version(pkg):
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
            return r.stdout.strip() or "not installed"

        return [
            ("CPU", f"{cpu} ({os.cpu_count()} hardware threads, `nproc` {len(os.sched_getaffinity(0))})"),
            ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
            ("kernel", platform.release()),
            ("Debian", read("/etc/debian_version").strip() or "unknown"),
            ("packages", ", ".join(f"{p} {version(p)}" for p in (
                "python3-celery", "python3-kombu", "python3-redis", "python3-msgpack", "redis-server",
                "nats-server", "libcaf-dev", "libsqlite3-dev"))),
            ("date", self.run.date),
            ("commit", self.run.commit),
            ("command", f"`{self.run.command}`"),
            ("load average", "before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
                *self.run.load_before, *self.run.load_after)),
            ("duration", f"{self.run.seconds:.0f} s (the workloads; the build before it is not counted)"),
        ]

    def kill_table(self):
        lines = [["system", "what was killed", "done", "late", "lost", "ran twice", "counted at"]]
        order = [("celery", "node"), ("celery", "child"), ("trellis-nats", None), ("trellis-embedded", None)]
        for system, variant in order:
            k = self.kill(system, variant)
            name = NAMES[system] + (f" ({variant})" if variant else "")
            if k is None:
                err = self.find(system, "kill", errors=True)
                lines.append([name, "failed: " + err["error"] if err else "not run", "", "", "", "", ""])
                continue
            lines.append([name, k["killed"], k["done"], k["late"], k["lost"], k.get("ran_twice", "n/a"),
                          f"{k['seconds_after_kill']} s after the kill"])
        return self.markdown(lines)

    def workers_table(self):
        s = self.run.sizes
        lines = [["system", "1 worker process (tasks/s)", "2 worker processes (tasks/s)"]]
        for system, one, two in (("celery", {"workers": 1}, {"workers": 2}),
                                 ("trellis-embedded", {"concurrency": 1}, {"concurrency": 2}),
                                 ("trellis-nats", {"workers": 1}, {"workers": 2})):
            name = NAMES[system] + (" (handler threads: one process)" if system == "trellis-embedded" else "")
            lines.append([name, self.cell(system, "noop", s["noop"], "tasks_per_s", "tasks/s", one),
                          self.cell(system, "noop", s["noop"], "tasks_per_s", "tasks/s", two)])
        return self.markdown(lines)

    def payload_table(self):
        lines = [["payload", "tasks", "Celery (tasks/s)", "Trellis embedded (tasks/s)", "Trellis NATS (tasks/s)",
                  "embedded vs Celery", "NATS vs Celery"]]
        for size, n in self.run.sizes["payloads"]:
            m = {"payload_bytes": size}
            lines.append([f"{size:,} B", f"{n:,}"] +
                         [self.cell(s, "payload", n, "tasks_per_s", "tasks/s", m) for s in SYSTEMS] +
                         [ratio_text(self.ratio(s, "payload", n, "tasks_per_s", "high", m))
                          for s in ("trellis-embedded", "trellis-nats")])
        return self.markdown(lines)

    def queued_table(self):
        lines = [["system", "tasks queued", "drain (tasks/s)", "dispatcher / broker peak RSS", "worker peak RSS",
                  "broker memory per queued task"]]
        c = self.find("celery", "queued")
        if c:
            lines.append(["Celery (Redis)", f"{c['tasks']:,}", thousands(c["tasks_per_s"]),
                          f"Redis {c['broker_peak_rss_kb'] / 1024:.0f} MiB (used_memory_peak)",
                          f"{c['worker_peak_rss_kb'] / 1024:.0f} MiB (main + 2 children)",
                          f"{c['redis_bytes_per_queued_task']:,.0f} B"])
        else:
            lines.append(["Celery (Redis)", "failed (notes)" if self.find("celery", "queued", errors=True)
                          else "not run", "", "", "", ""])
        runs = sorted((row for row in self.run.results if row.get("system") == "trellis-nats"
                       and row.get("workload") == "queued" and "error" not in row), key=lambda row: row["tasks"])
        for t in runs:
            lines.append(["Trellis NATS", f"{t['tasks']:,}", thousands(t.get("tasks_per_s", 0)),
                          f"dispatcher {t.get('dispatcher_peak_rss_kb', 0) / 1024:.0f} MiB",
                          f"{t.get('worker_peak_rss_kb', 0) / 1024:.0f} MiB", "JetStream file store"])
        if not runs:
            lines.append(["Trellis NATS", "failed (notes)" if self.find("trellis-nats", f"nats-queued-{self.run.sizes['queued']}", errors=True)
                          else "not run", "", "", "", ""])
        return self.markdown(lines)

    def breaks_text(self):
        """What breaks first at 10x and 100x: the reasoning is fixed, the
        numbers are this run's."""
        s = self.run.sizes
        n = s["noop"]
        c_rate = self.value("celery", "noop", n, "tasks_per_s", MAIN)
        c_q = self.find("celery", "queued")
        c_chain = [self.value("celery", "chain", k, "seconds") for k in s["chains"]]
        out = []
        out.append("The loads below are 10x and 100x the no-op row ({:,} and {:,} tasks).".format(n * 10, n * 100))
        out.append("")
        out.append("**Celery.**")
        if c_rate:
            out.append(f"- Time grows linearly with the load: at {thousands(c_rate)} tasks/s 10x takes "
                       f"{n * 10 / c_rate:,.0f} s and 100x {n * 100 / c_rate:,.0f} s.")
            c_one = self.value("celery", "noop", n, "tasks_per_s", {"workers": 1})
            if c_one:
                out.append(f"- More worker processes do not fix that: 1 process ran {thousands(c_one)} tasks/s and "
                           f"2 ran {thousands(c_rate)}. The per-message work outside the pool (the client's publish, "
                           "a Redis round trip per message and per result, the worker's main process receiving, "
                           "acking and handing every message to a child) sets the pace, and more nodes would add "
                           "Redis round trips, not remove them.")
        if c_q:
            per = c_q["redis_bytes_per_queued_task"]
            out.append(f"- What breaks first is Redis memory: every queued task costs {per:,.0f} B in Redis "
                       f"(measured with {c_q['tasks']:,} queued), so a backlog of 100x ({n * 100:,}) needs "
                       f"{per * n * 100 / 2**30:.1f} GiB and 1,000,000 queued needs {per * 1e6 / 2**30:.1f} GiB of RAM, "
                       "plus a result key per task for a day (result_expires). Redis holds all of it in memory; "
                       "with maxmemory set it refuses writes, without it the kernel's OOM killer decides.")
        if all(c_chain) and len(c_chain) == 2 and s["chains"][1] > s["chains"][0]:
            growth = c_chain[1] / c_chain[0]
            factor = s["chains"][1] // s["chains"][0]
            text = (f"- Chains: one of {s['chains'][0]:,} took {c_chain[0]:.2f} s and one of {s['chains'][1]:,} "
                    f"{c_chain[1]:.2f} s ({growth:.1f}x for {factor}x the steps). Every Celery chain message "
                    "carries the rest of the chain, so the bytes sent grow with the square of the length")
            text += (": that is what breaks first for long chains." if growth > 1.5 * factor else
                     "; at these lengths the per-step round trips still dominate, at 100x the length the "
                     "quadratic part takes over.")
            out.append(text)
        k = self.kill("celery", "node")
        if k:
            text = (f"- A killed worker node strands what it had reserved: {k['late']} task(s) sat in Redis's "
                    "`unacked` hash at the end of the kill workload and come back only after visibility_timeout "
                    "(1 hour). More load means more reserved messages per node, so more late work per crash.")
            if k["lost"]:
                how = (f"{k['lost_as_failure']} of them stored as FAILURE" if k.get("lost_as_failure") else
                       "none stored as a failure: most likely a message the node had taken from the queue "
                       "(BRPOP) but not yet recorded in `unacked` when it died")
                text += (f" {k['lost']} task(s) were in neither the queue nor `unacked` and had no result "
                         f"({how}): they will never run.")
            out.append(text)
        out.append("")
        out.append("**Trellis embedded.**")
        e_rate = self.value("trellis-embedded", "noop", n, "tasks_per_s", MAIN)
        if e_rate:
            out.append(f"- The dispatcher thread is the serial part: {thousands(e_rate)} tasks/s at {n:,} tasks.")
        for factor in (10, 100):
            row = self.find("trellis-embedded", "noop", n * factor, {"scale": factor})
            err = self.find("trellis-embedded", f"embedded-noop-{factor}x", errors=True)
            if row:
                out.append(f"- {factor}x as one group of {n * factor:,}: {thousands(row['tasks_per_s'])} tasks/s, "
                           f"peak RSS {row['process_peak_rss_kb'] / 1024:.0f} MiB for the whole process (client, "
                           "dispatcher and workers). The group's graph and its result array live in memory until "
                           "the group ends, so memory grows with the size of one workflow, not with the number "
                           "of workflows.")
            elif err:
                rss = err.get("process_peak_rss_kb")
                text = (f"- {factor}x as one group of {n * factor:,} does not run: `{err['error']}`"
                        + (f" (peak RSS {rss / 1024:.0f} MiB)." if rss else "."))
                if "envelope" in err["error"]:
                    text += (" This is what breaks first: one submission is one envelope, and envelopes are "
                             "capped (8 MiB) so that a single message cannot exhaust a process. The load has to "
                             "be split into several submissions, as the payload rows do with groups of at most "
                             "4 MiB.")
                out.append(text)
        big = self.run.sizes["payloads"][-1]
        e_big = self.value("trellis-embedded", "payload", big[1], "tasks_per_s", {"payload_bytes": big[0]})
        c_big = self.value("celery", "payload", big[1], "tasks_per_s", {"payload_bytes": big[0]})
        if e_big and c_big:
            out.append(f"- Large payloads shrink the lead to nothing: at {big[0]:,} B per task Trellis ran "
                       f"{e_big:,.1f} tasks/s and Celery {c_big:,.1f}. Trellis writes every argument and every "
                       "result into SQLite and fsyncs it before it acknowledges, so its cost per task becomes "
                       "the disk's bandwidth; Redis keeps both in memory only. Larger payloads belong in a blob "
                       "store, with a reference in the task.")
        out.append("- Separate durable submissions are bound by the disk: each one commits with an fsync (see the "
                   "embedded benchmark's syncs/task in docs/performance.md), so many small workflows run at the "
                   "disk's commit rate unless they are grouped.")
        out.append("")
        out.append("**Trellis over NATS.**")
        t = self.find("trellis-nats", "queued", tasks=s["queued"])
        more = self.find("trellis-nats", "queued", tasks=s["queued_more"])
        if t:
            versus = (f" (with {more['tasks']:,} queued: {more.get('dispatcher_peak_rss_kb', 0) / 1024:.0f} MiB)"
                      if more else "")
            out.append(f"- {t['tasks']:,} queued drained at {thousands(t.get('tasks_per_s', 0))} tasks/s with "
                       f"dispatcher peak RSS {t.get('dispatcher_peak_rss_kb', 0) / 1024:.0f} MiB{versus} and worker "
                       f"peak RSS {t.get('worker_peak_rss_kb', 0) / 1024:.0f} MiB. The backlog is in JetStream's "
                       "file store and the workflow state in SQLite; the dispatcher holds at most "
                       "`--max-cached-nodes` of workflow graphs and 65,536 unacked events in memory "
                       "(docs/decisions/0011-bounded-graph-cache.md), so at 100x what grows is disk, not RAM. "
                       "What breaks first is the single dispatcher (one partition): every outcome goes through "
                       "its SQLite writer.")
        else:
            out.append("- Not measured in this run (no `trellis_bench_nats`). By design the backlog sits in "
                       "JetStream's file store and the state in SQLite, so at 100x the single dispatcher "
                       "(partition 0, one SQLite writer for every outcome) is expected to be the limit before "
                       "memory is.")
        return "\n".join(out)

    def write_doc(self, path, plot_rel):
        s = self.run.sizes
        parts = []
        parts.append("# Benchmarks: Trellis and Celery side by side\n")
        parts.append("Generated by `bench/compare` ([bench/README.md](../bench/README.md)); do not edit by hand: "
                     "run the command again. Every number below comes from the run described here.\n")
        parts.append("## Machine and run\n")
        parts.append("\n".join(f"- {k}: {v}" for k, v in self.machine()) + "\n")
        if self.run.sizes is not None and self.run.sizes.get("noop", 0) < 20_000:
            parts.append("**These are the reduced `--quick` sizes, not the ones issue 4 asks for.**\n")
        parts.append("## Results\n")
        parts.append(self.table_text() + "\n")
        if plot_rel:
            parts.append(f"![Trellis and Celery]({plot_rel})\n")
        parts.append("## Goals\n")
        parts.append(self.goals_text() + "\n")
        parts.append("## Tasks written in Python\n")
        parts.append("The same no-op group with the task written in Python (`bench/python_noop.py`, the `trellis` "
                     "package of docs/python.md): embedded, an `App` with 2 handler threads and `synchronous=FULL`; "
                     "over NATS, a nats-server, `trellis-demo dispatcher` and two `python3 -m trellis worker "
                     "--concurrency 1` processes, the client in a third. Each handler call takes the GIL; "
                     "everything else (dispatch, store, transport) runs in C++ without it. The median of "
                     f"{s.get('embedded_repeat', 1)} groups after a warm-up.\n")
        parts.append(self.python_table() + "\n")
        parts.append("## How each side runs\n")
        parts.append(
            "- **Celery**: one worker node, `--pool prefork --concurrency 2`, Redis on loopback as broker and "
            "result backend, `task_serializer` and `result_serializer` msgpack, and the settings a careful user "
            "sets so that a crash loses as little as Celery allows: `task_acks_late=True` (ack after the task "
            "ran) and `task_reject_on_worker_lost=True` (requeue the task of a prefork child that died). The "
            "prefetch multiplier (4) and the Redis `visibility_timeout` (3,600 s) keep their defaults: a shorter "
            "timeout hands still-running tasks to a second worker. Redis runs without persistence (`--save \"\"`, "
            "no AOF), as Celery deployments usually do: a Redis crash loses the queue. Each workload runs in a fresh "
            "client process (Celery's client keeps a Redis subscription per task it sent, and one workload's "
            "leftovers would slow the next): groups for the no-op, results and payload rows "
            "(`group(...).apply_async().get()`), `echo.delay(i).get()` for round trips, `chord(...)(body)` and "
            "`chain(...)` timed until the body's (last step's) result is stored in Redis, polled every 10 ms: "
            "`.get()` on a chord of 10,000 spent minutes in the client after the chord had finished, handling one "
            "notification per header task.\n"
            "- **Trellis embedded**: `trellis_bench_embedded --json --repeat "
            f"{s.get('embedded_repeat', 1)}` (bench/embedded_bench.cpp: the median run of each workload, the "
            "round trips of all runs pooled; Celery's rows are single runs, each lasting seconds), one process, "
            "`synchronous=FULL` (every commit fsynced), `--concurrency 2` (2 handler threads), the "
            "store on the same disk as the build. Groups for the no-op, results and payload rows (payloads in "
            "groups of at most 4 MiB of arguments, a submission's limit being 8 MiB).\n"
            "- **Trellis over NATS**: `trellis_bench_nats --json --workers 2` (a nats-server, one dispatcher and 2 "
            "worker processes). The SIGKILL row instead runs nats-server, `trellis-demo dispatcher` and two "
            f"`trellis-demo worker --concurrency 1` processes started by the driver, with `--ack-wait-ms "
            f"{self.run.ack_wait_ms if hasattr(self.run, 'ack_wait_ms') else 5000}`.\n")
        parts.append("## The SIGKILL workload\n")
        parts.append(
            f"{s['kill_tasks']} tasks of `sleep_ms({s['kill_sleep_ms']})` are submitted at once; {s['kill_after']:.0f} s "
            f"later one worker process gets SIGKILL; {s['kill_horizon']:.0f} s after the kill (or as soon as "
            "every task is done) each task is counted as **done** (its result is stored), **late** (not done, "
            "but the broker or store still holds it, so it runs later) or **lost** (not done, and nothing holds "
            "it any more).\n")
        parts.append(
            "Which Celery process to kill: the fair comparison is a whole worker node (main process and "
            "child) out of two nodes of one process each, the `node` row, used in the results table. A Trellis "
            "worker process is one process that holds the task messages it fetched, unacked, and runs them; in "
            "Celery the main process holds the reserved (prefetched, unacked) messages and the children run "
            "them, so only killing the main process loses what a Trellis worker loses. Two nodes of one process "
            "keep the 2 processes and leave one node running, as the second Trellis worker keeps running. The "
            "`child` row kills only one prefork child of the usual 2-process node: the task it ran is requeued "
            "(reject_on_worker_lost) and the main process keeps its reservations, a milder failure than Trellis "
            "is put through.\n")
        parts.append(self.kill_table() + "\n")
        parts.append("`ran twice` counts Celery tasks whose body ran more than once (a Redis counter per task id); "
                     "Trellis records each node's outcome once whatever the deliveries, so it has no such count "
                     "here.\n")
        parts.append("## Scale\n")
        parts.append("### Queued tasks and memory\n")
        c_q = self.find("celery", "queued")
        rate = (f" ({thousands(c_q['publish_tasks_per_s'])} a second in this run)"
                if c_q and c_q.get("publish_tasks_per_s") else "")
        parts.append(f"Trellis over NATS publishes {s['queued']:,} no-op tasks (and, to show that its memory "
                     f"does not grow with the backlog, {s['queued_more']:,}) while no worker runs, then starts "
                     f"the workers and drains them. Celery publishes {s['celery_queued']:,}: fewer, because its "
                     f"client publishes one message per call{rate} and a million would not fit the 15-minute "
                     "budget. Then a 2-process node starts and drains them; Redis's memory per queued task is "
                     "projected to larger backlogs in the next section.\n")
        parts.append(self.queued_table() + "\n")
        parts.append("### 1 and 2 worker processes\n")
        parts.append(f"The no-op row ({s['noop']:,} tasks) with one worker process and with two.\n")
        parts.append(self.workers_table() + "\n")
        parts.append("### Payload sizes\n")
        parts.append("Each task takes a string of the given size and returns it; every result is read back and "
                     "compared. Fewer 1 MB tasks (100 MB each way) keep that row within the time budget.\n")
        parts.append(self.payload_table() + "\n")
        parts.append("## What breaks first at 10x and 100x\n")
        parts.append(self.breaks_text() + "\n")
        notes = list(self.run.notes)
        for row in self.run.results:
            if "error" in row:
                extra = {k: v for k, v in row.items() if k not in ("system", "workload", "error")}
                notes.append(f"{NAMES.get(row['system'], row['system'])} `{row['workload']}` "
                             f"{extra if extra else ''}: {row['error']}")
        parts.append("## Notes\n")
        parts.append("\n".join(f"- {n}" for n in notes) + "\n" if notes else "- Every workload ran.\n")
        with open(path, "w") as f:
            f.write("\n".join(parts))

    def write_plot(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
        labels = [r[0].split(" (")[0] for r in self.rows]
        width = 0.38
        for i, system in enumerate(("trellis-embedded", "trellis-nats")):
            ratios = [self.ratio(system, r[1], r[2], r[3], r[5], r[6]) for r in self.rows]
            xs = [k + (i - 0.5) * width for k in range(len(self.rows))]
            bars = left.bar(xs, [r or 0 for r in ratios], width, label=NAMES[system], color=COLORS[system])
            for x, r in zip(xs, ratios):
                left.text(x, r if r else 1, ratio_text(r) if r else "not run", ha="center", va="bottom",
                          fontsize=7, rotation=90)
            del bars
        left.axhline(1, color="black", linewidth=0.8)
        left.set_yscale("log")
        left.set_ylabel("times faster than Celery (log)")
        left.set_xticks(range(len(self.rows)))
        left.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        left.legend(fontsize=8)
        left.set_title("Trellis relative to Celery (1 = same speed)", fontsize=10)

        sizes = [size for size, _ in self.run.sizes["payloads"]]
        for system in SYSTEMS:
            ys = [self.value(system, "payload", n, "tasks_per_s", {"payload_bytes": size})
                  for size, n in self.run.sizes["payloads"]]
            points = [(x, y) for x, y in zip(sizes, ys) if y]
            if points:
                right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=NAMES[system],
                           color=COLORS[system])
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("payload per task (bytes, log)")
        right.set_ylabel("tasks/s (log)")
        right.set_title("Throughput by payload size", fontsize=10)
        right.legend(fontsize=8)
        fig.suptitle(f"bench/compare, {self.run.date}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
