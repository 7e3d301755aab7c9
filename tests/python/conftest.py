"""Fixtures of the Python tests: a real nats-server, a `trellis-demo
dispatcher` and `python3 -m trellis worker` processes, started as
tests/support/nats_server.hpp and cluster_processes.hpp start them: a port
the kernel picks (read back from the server's ports file, so no free-port
race), a temporary store, readiness awaited with one bound, and every
process stopped by the PID we hold.

ctest passes the binaries in the environment (tests/CMakeLists.txt):
TRELLIS_NATS_SERVER_BIN, TRELLIS_DEMO_BIN, and PYTHONPATH with the built
package.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

#: The one bound on every wait of these tests, as max_test_wait in C++.
MAX_WAIT = 60.0

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_until(condition, what, timeout=MAX_WAIT):
    """Polls `condition` until it is true, failing the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Process:
    """A child process with its output in files, stopped by its PID."""

    def __init__(self, argv, directory, name, env=None):
        self.name = name
        self.out_path = os.path.join(directory, name + ".out")
        self.err_path = os.path.join(directory, name + ".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self):
        return self.popen.pid

    def stderr(self):
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def running(self):
        return self.popen.poll() is None

    def wait_running(self):
        """Until it logs that it runs (connected, streams declared)."""
        wait_until(lambda: not self.running() or " running" in self.stderr(), f"{self.name} to start")
        assert self.running(), f"{self.name} exited {self.popen.returncode}:\n{self.stderr()}"

    def stop(self, sig=signal.SIGTERM):
        """Signals it and waits (SIGKILL after the bound); returns the exit code."""
        if self.running():
            os.kill(self.pid, sig)
        try:
            return self.popen.wait(MAX_WAIT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait()


class NatsServer:
    """nats-server with JetStream on 127.0.0.1, a port the kernel picks."""

    def __init__(self, directory):
        binary = os.environ.get("TRELLIS_NATS_SERVER_BIN", "nats-server")
        store = os.path.join(directory, "store")
        os.makedirs(store)
        self.process = Process([binary, "-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-js", "-sd", store,
                                "--ports_file_dir", directory], directory, "nats-server")
        ports_file = os.path.join(directory, f"nats-server_{self.process.pid}.ports")
        wait_until(lambda: not self.process.running() or _readable_json(ports_file), "the nats-server ports file")
        assert self.process.running(), self.process.stderr()
        with open(ports_file) as f:
            self.url = json.load(f)["nats"][0]
        host, port = self.url.rsplit("/", 1)[1].split(":")
        wait_until(lambda: _connects(host, int(port)), "nats-server to accept connections")

    def stop(self):
        self.process.stop()


def _readable_json(path):
    try:
        with open(path) as f:
            json.load(f)
        return True
    except (OSError, ValueError):
        return False


def _connects(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Cluster:
    """A nats-server, one `trellis-demo dispatcher` and the workers a test
    starts, in a namespace of its own."""

    def __init__(self, directory):
        self.dir = directory
        self.ns = "py" + uuid.uuid4().hex[:8]
        self.nats = NatsServer(directory)
        self.url = self.nats.url
        self.processes = []

    def flags(self):
        return ["--broker", self.url, "--namespace", self.ns]

    def start_dispatcher(self):
        demo = os.environ.get("TRELLIS_DEMO_BIN", "trellis-demo")
        p = Process([demo, "dispatcher", "--db", os.path.join(self.dir, "dispatcher.db")] + self.flags(),
                    self.dir, f"dispatcher-{len(self.processes)}")
        self.processes.append(p)
        p.wait_running()
        return p

    def start_python_worker(self, app="cluster_tasks", extra=()):
        """`python3 -m trellis worker --app APP` with this interpreter, the
        test directory on the path (where the task modules are)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")])
        p = Process([sys.executable, "-m", "trellis", "worker", "--app", app] + self.flags() + list(extra),
                    self.dir, f"worker-{len(self.processes)}", env=env)
        self.processes.append(p)
        p.wait_running()
        return p

    def logs(self):
        return "\n".join(f"--- {p.name}\n{p.stderr()}" for p in self.processes)

    def stop(self):
        # Workers first, as cluster_processes::stop_all does.
        codes = {}
        for p in sorted(self.processes, key=lambda p: not p.name.startswith("worker")):
            codes[p.name] = p.stop()
        self.nats.stop()
        return codes


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path))
    try:
        yield c
    finally:
        c.stop()
