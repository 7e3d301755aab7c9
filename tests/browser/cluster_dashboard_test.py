#!/usr/bin/env python3
"""The dashboard of a cluster in a real browser: a nats-server, a
`trellis-demo dispatcher` and `worker`, and `trellis dashboard --http`,
which serves the namespace from outside it. A chord is submitted through
the dashboard's API; its /metrics (every process's, merged) parse with the
Prometheus client; the finished chord is read from /api/workflows/ID; and
Debian's chromium, headless, shows the workflow's graph, the workers and
the queues. Every wait is bounded; every process is stopped by its PID.

    cluster_dashboard_test.py --demo trellis-demo --cli trellis --nats-server nats-server
"""

import argparse
import sys
import tempfile

from browser_support import (NatsServer, Process, browser, check_chord_graph, check_metrics, css, http_json,
                             wait_for)

CHORD = {"chord": {"header": [{"task": "mul", "args": [i, 10]} for i in range(1, 4)],
                   "body": {"task": "xsum"}}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--nats-server", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        nats = NatsServer(args.nats_server, workdir)
        common = ["--broker", nats.url, "--namespace", "browser", "--partitions", "2"]
        processes = []
        driver = None
        try:
            dispatcher = Process([args.demo, "dispatcher", "--db", workdir + "/cluster.db"] + common, workdir,
                                 "dispatcher")
            processes.append(dispatcher)
            worker = Process([args.demo, "worker", "--concurrency", "2"] + common, workdir, "worker")
            processes.append(worker)
            dispatcher.wait_log(" running")
            worker.wait_log(" running")
            dashboard = Process([args.cli, "dashboard", "--http", "127.0.0.1:0"] + common, workdir, "dashboard")
            processes.append(dashboard)
            base = dashboard.http_base()

            chord = http_json(base, "/api/workflows?key=browser-chord", CHORD)["id"]
            driver = browser()
            wait_for(driver, "the chord to finish", lambda d: http_json(base, "/api/workflows/" + chord)["state"]
                     == "SUCCESS")
            doc = http_json(base, "/api/workflows/" + chord)
            check_chord_graph(doc)
            assert doc["result"] == 60, "the chord's result is %s, not 60" % doc["result"]
            families = check_metrics(base, "trellis_tasks_succeeded")
            processes_seen = {s.labels.get("process") for f in families.values() for s in f.samples}
            assert len(processes_seen - {None}) >= 2, "the merged metrics name %s" % processes_seen

            driver.get(base + "/#/workflows/" + chord)
            wait_for(driver, "the chord's summary to say SUCCESS", lambda d: css(d, "#summary[data-state='SUCCESS']"))
            boxes = css(driver, "g.box")
            assert len(boxes) == 4 and all(b.get_attribute("data-state") == "SUCCESS" for b in boxes), \
                "the chord's four tasks are not all drawn SUCCESS"
            driver.get(base + "/#/workflows")
            wait_for(driver, "the chord listed", lambda d: css(d, "#workflows tr[data-id='%s']" % chord))
            driver.get(base + "/#/workers")
            wait_for(driver, "a worker and a dispatcher listed",
                     lambda d: css(d, "#workers tr[data-role='worker']") and css(d, "#workers tr[data-role='dispatcher']"))
            driver.get(base + "/#/queues")
            wait_for(driver, "the default queue listed", lambda d: css(d, "#queues tr[data-queue='default']"))
            driver.get(base + "/#/events")
            wait_for(driver, "the event stream connected", lambda d: css(d, "#live.on"))
            http_json(base, "/api/workflows", {"task": "add", "args": [1, 2]})
            wait_for(driver, "started (from the worker) and succeeded (from the dispatcher) events",
                     lambda d: {"started", "succeeded"} <= {li.get_attribute("data-kind") for li in css(d, "#events li")})
        finally:
            if driver is not None:
                driver.quit()
            codes = {p.name: p.stop() for p in reversed(processes)}
            nats.stop()
        assert all(code == 143 for code in codes.values()), "exit codes after SIGTERM: %s" % codes
    print("cluster dashboard: every check passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("cluster dashboard: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
