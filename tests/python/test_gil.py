"""The GIL is released while C++ runs: two Python tasks overlap on an
engine with two threads, and other Python threads run while `wait` blocks."""

import threading
import time

import pytest

import trellis

# fetch_batch=1: a handler thread takes one task at a time, so the two
# calls of `meet` go to two threads (with a larger batch one thread may take
# both, and would run them one after the other).
app = trellis.App(concurrency=2, fetch_batch=1)
both_inside = threading.Barrier(2)
started = threading.Event()
opened = threading.Event()


@app.task
def meet(i):
    # Returns only if the other call is inside at the same time; time.sleep
    # first, to show that a sleeping handler lets the other one in.
    time.sleep(0.05)
    both_inside.wait(timeout=30)
    return i


@app.task
def waits_for_a_python_thread():
    started.set()
    if not opened.wait(timeout=30):
        raise RuntimeError("no Python thread ran while the caller waited")
    return "opened by a thread"


@pytest.fixture(scope="module", autouse=True)
def engine():
    with app:
        yield app


def test_two_handlers_run_at_once():
    assert app.run(trellis.group(meet.s(1), meet.s(2)), timeout=60) == [1, 2]


def test_a_python_thread_runs_while_wait_blocks():
    def opener():
        # Runs only if the main thread, blocked in wait(), let go of the GIL.
        if started.wait(timeout=30):
            opened.set()

    thread = threading.Thread(target=opener)
    run = app.submit(waits_for_a_python_thread.s())
    thread.start()
    assert run.wait(timeout=60) == "opened by a thread"
    thread.join(timeout=30)
