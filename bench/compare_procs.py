"""Processes that bench/compare starts: each in its own session, remembered by
PID, and stopped by that PID (SIGTERM to its process group, then SIGKILL),
also on an error or Ctrl-C. Nothing is ever stopped by name."""

import os
import signal
import socket
import subprocess
import threading
import time


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_text(path, text, timeout, proc=None):
    """Waits until the file at `path` contains `text`; False on timeout or when
    `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def wait_for_port(port, timeout):
    """Waits until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def children_of(pid):
    """The PIDs of a process's direct children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def peak_rss_kb(pid):
    """VmHWM of a running process in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Processes:
    """The processes this run started. `stop_all` ends every one still alive."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started = []

    def start(self, name, argv, env=None, cwd=None):
        """Starts `argv` in a new session (its PID is its process group), with
        stdout and stderr in log_dir/name.out and name.err."""
        out = open(os.path.join(self.log_dir, name + ".out"), "wb")
        err = open(os.path.join(self.log_dir, name + ".err"), "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)
        out.close()
        err.close()
        proc.name = name
        proc.out_path = os.path.join(self.log_dir, name + ".out")
        proc.err_path = os.path.join(self.log_dir, name + ".err")
        self.started.append(proc)
        return proc

    def stop(self, proc, grace=10.0):
        """SIGTERM to the process group `proc` leads, then SIGKILL after `grace`
        seconds; reaps it."""
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        # Children left behind in the group (a prefork child whose parent was
        # killed) go too.
        self._signal_group(proc, signal.SIGKILL)

    def stop_all(self):
        for proc in reversed(self.started):
            self.stop(proc, grace=5.0)
        self.started = []

    @staticmethod
    def _signal_group(proc, sig):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def run_measured(argv, timeout, out_path, err_path, env=None):
    """Runs `argv` to completion (killed by PID after `timeout` seconds) with
    stdout and stderr in files. Returns (exit status or None on timeout,
    peak RSS in KiB from the kernel's rusage, seconds)."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    timed_out = threading.Event()

    def expire():
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        expire()
        os.wait4(proc.pid, 0)
        raise
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return (None if timed_out.is_set() else proc.returncode), usage.ru_maxrss, seconds
