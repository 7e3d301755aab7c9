#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's chromium, headless, driven by
chromedriver through Selenium): an embedded `trellis-demo serve` with an
HTTP endpoint and a token, workflows submitted over the JSON API, its
/metrics parsed with the Prometheus client, a finished chord read from
/api/workflows/ID, and each page checked for what it shows. Every wait is
bounded; nothing sleeps to synchronize.

    dashboard_test.py --demo build/bin/trellis-demo [--screenshots DIR]

With --screenshots the pages are also saved as PNG files (docs/dashboard.md
shows them). Exits 0 when every check passed, 1 otherwise.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser_support import (EXAMPLES, Process, browser, check_chord_graph, check_metrics, css, http_json,
                             wait_for)

TOKEN = "dashboard-test-token-0123456789"


class Server:
    """`trellis-demo serve` with a token, on a port the kernel picks."""

    def __init__(self, demo, workdir):
        self.workdir = workdir
        self.db = os.path.join(workdir, "dash.db")
        self.process = Process([demo, "serve", "--db", self.db, "--http", "127.0.0.1:0",
                                "--concurrency", "4"], workdir, "serve", env={"TRELLIS_HTTP_TOKEN": TOKEN})
        self.base = self.process.http_base()

    def post(self, path, body):
        return http_json(self.base, path, body, TOKEN)

    def get(self, path):
        return http_json(self.base, path)

    def stop(self):
        code = self.process.stop()
        assert code == 143, "serve exited %s after SIGTERM, not 143" % code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", required=True)
    parser.add_argument("--screenshots")
    args = parser.parse_args()
    shots = args.screenshots

    def shot(driver, name):
        if shots:
            os.makedirs(shots, exist_ok=True)
            driver.save_screenshot(os.path.join(shots, name + ".png"))

    with tempfile.TemporaryDirectory() as workdir:
        server = Server(args.demo, workdir)
        driver = None
        stopped = False
        try:
            pipeline = json.load(open(os.path.join(EXAMPLES, "order_pipeline.json")))
            done = server.post("/api/workflows", pipeline)["id"]
            failing = server.post("/api/workflows", {"task": "fail", "args": ["card declined"]})["id"]
            driver = browser()
            # The finished chord read from the API, the metrics with the
            # Prometheus client's parsers.
            wait_for(driver, "the pipeline to finish",
                     lambda d: server.get("/api/workflows/" + done)["state"] == "SUCCESS")
            check_chord_graph(server.get("/api/workflows/" + done))
            families = check_metrics(server.base, "trellis_tasks_succeeded")
            succeeded = sum(s.value for s in families["trellis_tasks_succeeded"].samples
                            if s.name == "trellis_tasks_succeeded_total")
            assert succeeded >= 7, "the metrics count %s tasks succeeded" % succeeded

            # A finished workflow drawn as its graph: every task box SUCCESS.
            driver.get(server.base + "/#/workflows/" + done)
            wait_for(driver, "the pipeline's summary to say SUCCESS",
                     lambda d: css(d, "#summary[data-state='SUCCESS']"))
            boxes = css(driver, "g.box")
            assert len(boxes) == 7, "the order pipeline has 7 tasks, the graph drew %d" % len(boxes)
            assert all(b.get_attribute("data-state") == "SUCCESS" for b in boxes), "a task box is not SUCCESS"
            chords = [f for f in css(driver, "rect.frame") if f.get_attribute("data-node") == "1"]
            assert chords, "the chord (node 1) has no frame"
            boxes[0].click()
            wait_for(driver, "the details of the clicked node", lambda d: css(d, "#details[data-node]"))

            # A step that replaced itself is drawn with the canvas it became.
            split = server.post("/api/workflows", {"chain": [{"task": "split", "args": [3]}, {"task": "xsum"}]})["id"]
            driver.get(server.base + "/#/workflows/" + split)
            wait_for(driver, "the split workflow's summary to say SUCCESS",
                     lambda d: css(d, "#summary[data-state='SUCCESS']"))
            assert len(css(driver, "g.box[data-task='identity']")) == 3, "the three identity steps are not drawn"
            assert len(css(driver, "g.box[data-task='split']")) == 1
            shot(driver, "workflow-replaced")
            driver.get(server.base + "/#/workflows/" + done)
            wait_for(driver, "the pipeline drawn again", lambda d: len(css(d, "g.box")) == 7)
            css(driver, "g.box")[0].click()
            wait_for(driver, "the details of the clicked node", lambda d: css(d, "#details[data-node]"))
            shot(driver, "workflow")

            # A running workflow updates without a reload: it is opened while
            # its first task sleeps and the page follows it to SUCCESS.
            running = server.post("/api/workflows", {"chain": [{"task": "sleep_ms", "args": [1500]},
                                                               {"task": "add", "args": [1]}]})["id"]
            driver.get(server.base + "/#/workflows/" + running)
            wait_for(driver, "the running workflow drawn as STARTED",
                     lambda d: css(d, "#summary[data-state='STARTED']"))
            shot(driver, "workflow-running")
            wait_for(driver, "the running workflow to turn SUCCESS without a reload",
                     lambda d: css(d, "#summary[data-state='SUCCESS']"))
            assert driver.execute_script("return performance.getEntriesByType('navigation').length") == 1

            # Revoke from the page: the token goes in the header field first.
            token = driver.find_element(By.ID, "token")
            token.send_keys(TOKEN)
            driver.execute_script("document.getElementById('token').dispatchEvent(new Event('change'))")
            slow = server.post("/api/workflows", {"chain": [{"task": "sleep_ms", "args": [3000]},
                                                            {"task": "add", "args": [1]}]})["id"]
            driver.get(server.base + "/#/workflows/" + slow)
            revoke = wait_for(driver, "the revoke button", lambda d: css(d, "#revoke"))[0]
            revoke.click()
            driver.switch_to.alert.accept()
            wait_for(driver, "the revoked workflow to say REVOKED", lambda d: css(d, "#summary[data-state='REVOKED']"))

            # The list: every workflow, and the state filter.
            driver.get(server.base + "/#/workflows")
            wait_for(driver, "the five workflows listed", lambda d: len(css(d, "#workflows tbody tr[data-id]")) == 5)
            listed = {r.get_attribute("data-id") for r in css(driver, "#workflows tbody tr[data-id]")}
            assert listed == {done, failing, split, running, slow}, "the list shows %s" % listed
            shot(driver, "workflows")
            Select(driver.find_element(By.ID, "state-filter")).select_by_value("FAILURE")
            wait_for(driver, "only the failed workflow listed",
                     lambda d: [r.get_attribute("data-id") for r in css(d, "#workflows tbody tr[data-id]")] == [failing])
            search = driver.find_element(By.ID, "search")
            search.send_keys(done)
            search.submit()
            wait_for(driver, "the searched workflow opened", lambda d: css(d, "#summary[data-state='SUCCESS']"))
            assert driver.current_url.endswith("#/workflows/" + done)

            # Dead letters: the failure is there; replay needs the token
            # (set above) and runs the node again, which fails again.
            driver.get(server.base + "/#/dead-letters")
            row = wait_for(driver, "the dead letter of the failing workflow",
                           lambda d: [r for r in css(d, "#dead-letters tbody tr[data-letter]")
                                      if failing in r.text])[0]
            letter = row.get_attribute("data-letter")
            shot(driver, "dead-letters")
            row.find_element(By.CSS_SELECTOR, "button.replay").click()
            wait_for(driver, "the letter marked replayed and a second letter",
                     lambda d: any(r.get_attribute("data-letter") == letter and r.get_attribute("data-replayed") == "true"
                                   for r in css(d, "#dead-letters tbody tr[data-letter]"))
                     and len(css(d, "#dead-letters tbody tr[data-letter]")) == 2)

            # Queues with their counters, workers with their tasks.
            driver.get(server.base + "/#/queues")
            wait_for(driver, "the default queue's row", lambda d: css(d, "#queues tbody tr[data-queue='default']"))
            cells = css(driver, "#queues tbody tr[data-queue='default'] td")
            succeeded = int(cells[3].text)
            assert succeeded >= 9, "the default queue shows %d tasks succeeded, expected at least 9" % succeeded
            shot(driver, "queues")
            driver.get(server.base + "/#/workers")
            row = wait_for(driver, "the embedded worker pool", lambda d: css(d, "#workers tr[data-role='embedded']"))[0]
            assert "sleep_ms" in row.text and "add" in row.text, "registered tasks missing: " + row.text
            shot(driver, "workers")

            # A step's callback is drawn beside it, joined by a dashed edge.
            linked = server.post("/api/workflows", {"task": "add", "args": [1, 2],
                                                    "options": {"link": {"task": "mul", "args": [10]}}})["id"]
            driver.get(server.base + "/#/workflows/" + linked)
            wait_for(driver, "the linked workflow and its callback SUCCESS",
                     lambda d: css(d, "#summary[data-state='SUCCESS']")
                     and css(d, "g.box[data-task='mul'][data-state='SUCCESS']"))
            assert css(driver, "path.edge.callback"), "the callback's edge is not drawn"
            shot(driver, "workflow-callback")

            # A schedule added beside the running process ticks every second
            # and the Schedules page shows it with the workflow it started.
            tick = os.path.join(server.workdir, "tick.json")
            with open(tick, "w") as f:
                json.dump({"task": "noop"}, f)
            added = subprocess.run([args.demo, "schedule", "add", "tick", tick, "--every", "1s", "--db", server.db],
                                   capture_output=True, text=True, timeout=60)
            assert added.returncode == 0, "schedule add: %s" % added.stderr
            driver.get(server.base + "/#/schedules")
            wait_for(driver, "the schedule with the workflow of its first tick",
                     lambda d: [r for r in css(d, "#schedules tr[data-name='tick']") if "#/workflows/" in
                                (r.get_attribute("innerHTML") or "")])
            shot(driver, "schedules")

            # Task events arrive while the page is open.
            driver.get(server.base + "/#/events")
            wait_for(driver, "the event stream connected", lambda d: css(d, "#live.on"))
            server.post("/api/workflows", {"task": "add", "args": [2, 3]})
            wait_for(driver, "submitted, started and succeeded events",
                     lambda d: {"submitted", "started", "succeeded"} <=
                     {li.get_attribute("data-kind") for li in css(d, "#events li")})
            shot(driver, "events")
            driver.quit()
            driver = None
            server.stop()
            stopped = True
        finally:
            if driver is not None:
                driver.quit()
            if not stopped:
                server.process.stop()
    print("dashboard: every check passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("dashboard: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
