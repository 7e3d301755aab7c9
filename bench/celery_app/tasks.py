"""Celery tasks and configuration for bench/compare.

The configuration is what a careful Celery user would run to lose as little as
Celery allows: Redis as broker and result backend (COMPARE_REDIS_URL, started by
the driver on loopback), msgpack for tasks and results, and

- task_acks_late: a message is acked after its task ran, not when a worker
  takes it, so a task whose worker dies is not acked;
- task_reject_on_worker_lost: when a prefork child dies mid-task, the task is
  requeued instead of failed with WorkerLostError.

The prefetch multiplier (4) and the Redis transport's visibility_timeout
(3,600 s) keep their defaults: lowering the visibility timeout below the
longest task makes Redis hand a still-running task to a second worker.

The worker runs with `--pool prefork --concurrency 2` (the driver's command
line), so it has two processes like Trellis's two worker processes.
"""

import os
import time

import redis
from celery import Celery

app = Celery("trellis_compare")
app.conf.update(
    broker_url=os.environ.get("COMPARE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("COMPARE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    task_serializer="msgpack",
    result_serializer="msgpack",
    accept_content=["msgpack"],
    result_accept_content=["msgpack"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)

# The key counting how often each sleep_ms task ran: the kill workload reports
# tasks that ran twice.
RUNS_KEY = "compare:runs"

_counter = None


def _runs():
    """One Redis connection per worker process, made on first use (after fork)."""
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(app.conf.broker_url)
    return _counter


@app.task(name="noop")
def noop(*args):
    """Takes anything (a chain step gets the previous result), returns None."""
    return None


@app.task(name="echo")
def echo(x):
    """Returns its argument: results are read back and checked."""
    return x


@app.task(name="chord_body")
def chord_body(results):
    """A chord's body: how many header results it got."""
    return len(results)


@app.task(name="sleep_ms", bind=True)
def sleep_ms(self, ms):
    """Sleeps `ms` milliseconds, then counts one run of this task id."""
    time.sleep(ms / 1000.0)
    _runs().hincrby(RUNS_KEY, self.request.id, 1)
    return ms
