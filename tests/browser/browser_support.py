"""What the browser tests share: child processes stopped by PID, a real
nats-server on a port the kernel picks, a Trellis HTTP endpoint found from
its log line, Debian's chromium headless through chromedriver, bounded
waits, and the Prometheus client's own parsers for /metrics.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 30  # seconds: the one bound on every wait
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")


def wait_until(condition, what, timeout=WAIT):
    """Polls `condition` (a child's log, a file) until true, at most `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))
        time.sleep(0.05)


class Process:
    """A child with stdout and stderr in files, stopped by the PID we hold."""

    def __init__(self, argv, directory, name, env=None):
        self.name = name
        self.err_path = os.path.join(directory, name + ".err")
        with open(os.path.join(directory, name + ".out"), "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          env=dict(os.environ, **(env or {})))

    def stderr(self):
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def running(self):
        return self.popen.poll() is None

    def http_base(self):
        """The base URL its HTTP endpoint announced (started on port 0)."""
        def announced():
            if not self.running():
                raise AssertionError("%s exited %s:\n%s" % (self.name, self.popen.returncode, self.stderr()))
            match = re.search(r"serves HTTP on (http://127\.0\.0\.1:\d+)/", self.stderr())
            return match.group(1) if match else None
        return wait_until(announced, "%s to announce its HTTP port" % self.name)

    def wait_log(self, text):
        wait_until(lambda: text in self.stderr() or not self.running(), "%s to log %r" % (self.name, text))
        assert self.running(), "%s exited %s:\n%s" % (self.name, self.popen.returncode, self.stderr())

    def stop(self):
        """SIGTERM, then SIGKILL after the bound; returns the exit code."""
        if self.running():
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            return self.popen.wait()


class NatsServer:
    """nats-server with JetStream on 127.0.0.1 and a temporary store; the
    port is the kernel's choice, read back from the server's ports file."""

    def __init__(self, binary, directory):
        store = os.path.join(directory, "nats-store")
        os.makedirs(store)
        self.process = Process([binary, "-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-js", "-sd", store,
                                "--ports_file_dir", directory], directory, "nats-server")
        ports = os.path.join(directory, "nats-server_%d.ports" % self.process.popen.pid)

        def read_url():
            try:
                with open(ports) as f:
                    return json.load(f)["nats"][0]
            except (OSError, ValueError, KeyError):
                return None
        self.url = wait_until(read_url, "the nats-server ports file")
        host, port = self.url.rsplit("/", 1)[1].split(":")

        def connects():
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(connects, "nats-server to accept connections")

    def stop(self):
        self.process.stop()


def http_json(base, path, body=None, token=None):
    """GET (or POST `body` as JSON) and return the decoded answer."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(base + path, data=data, method="POST" if body is not None else "GET",
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=WAIT) as res:
        return json.load(res)


def check_metrics(base, expect_family):
    """/metrics parses with the Prometheus client's parsers, as text 0.0.4 and
    as OpenMetrics; returns the families of the text form by name."""
    with urllib.request.urlopen(base + "/metrics", timeout=WAIT) as res:
        text = res.read().decode()
        assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4"), res.headers["Content-Type"]
    families = {f.name: f for f in parse_prometheus(text)}
    assert expect_family in families, "no %s in /metrics: %s" % (expect_family, sorted(families))
    req = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=WAIT) as res:
        assert res.headers["Content-Type"].startswith("application/openmetrics-text"), res.headers["Content-Type"]
        open_families = list(parse_openmetrics(res.read().decode()))
    assert open_families, "the OpenMetrics form holds no family"
    return families


def check_chord_graph(doc):
    """A finished workflow's graph document holds a SUCCESS chord whose
    header members and body are SUCCESS tasks."""
    assert doc["state"] == "SUCCESS", doc["state"]
    nodes = {n["id"]: n for n in doc["nodes"]}
    chords = [n for n in doc["nodes"] if n["kind"] == "chord"]
    assert chords, "no chord in the graph"
    for chord in chords:
        assert chord["state"] == "SUCCESS", chord
        for child in chord["children"]:
            assert nodes[child]["state"] == "SUCCESS", nodes[child]
    return chords


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver, what, condition):
    # A live page replaces its rows as events arrive: an element read while
    # it is being replaced is stale, and the condition is simply asked again.
    try:
        return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError("timed out after %d s waiting for %s" % (WAIT, what))


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)
