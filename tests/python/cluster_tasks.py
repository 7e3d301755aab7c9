"""The tasks the cluster tests' `python3 -m trellis worker --app cluster_tasks` serves."""

import os
import time

import trellis

app = trellis.App()


@app.task
def py_add(x, y):
    return x + y


@app.task
def py_xsum(values):
    return sum(values)


@app.task
def py_pid():
    """Which process ran it: the worker's, not the test's."""
    return os.getpid()


class OutOfStock(Exception):
    pass


@app.task
def py_fail(item):
    raise OutOfStock(f"no {item} left")


@app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=3, default_retry_delay=0.01,
          retry_backoff=False)
def py_flaky(ctx, failures):
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt}")
    return ctx.attempt


@app.task(bind=True)
def py_wait_for_file(ctx, path):
    """Waits (bounded) until `path` exists: a step that is running while the test revokes."""
    for _ in range(3000):
        if os.path.exists(path) or ctx.cancelled:
            return "done"
        time.sleep(0.01)
    return "gave up"
