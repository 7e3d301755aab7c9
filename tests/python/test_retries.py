"""Retries of Python tasks through the task's retry policy: autoretry_for
selects by exception class name, dont_autoretry_for excludes, exhausting
the retries fails the workflow, and trellis.Retry asks for one."""

import pytest

import trellis

app = trellis.App(concurrency=2, jitter_seed=7)
FAST = dict(default_retry_delay=0.01, retry_backoff=False)


@app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=3, **FAST)
def flaky(ctx, failures):
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt}")
    return ctx.attempt


@app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=3, **FAST)
def wrong_kind(ctx):
    raise KeyError(f"attempt {ctx.attempt}")


@app.task(bind=True, max_retries=3, dont_autoretry_for=("ValueError",), **FAST)
def refuses_values(ctx):
    raise ValueError(f"attempt {ctx.attempt}")


@app.task(bind=True, max_retries=2, **FAST)
def asks_again(ctx):
    if ctx.attempt < 3:
        raise trellis.Retry("not yet", countdown=0.01)
    return ctx.attempt


@pytest.fixture(scope="module", autouse=True)
def engine():
    with app:
        yield app


def test_a_listed_exception_is_retried_until_it_succeeds():
    assert app.run(flaky.s(2), timeout=30) == 3


def test_the_retries_run_out():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(flaky.s(10), timeout=30)
    assert raised.value.type == "ConnectionError"
    assert raised.value.message == "attempt 4"  # the first attempt and three retries


def test_an_exception_not_listed_fails_at_once():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(wrong_kind.s(), timeout=30)
    assert raised.value.type == "KeyError"
    assert "attempt 1" in raised.value.message


def test_dont_autoretry_for_fails_at_once():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(refuses_values.s(), timeout=30)
    assert raised.value.message == "attempt 1"


def test_a_signature_overrides_the_retry_count():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(flaky.s(10).set(max_retries=1), timeout=30)
    assert raised.value.message == "attempt 2"


def test_retry_asks_for_another_attempt():
    assert app.run(asks_again.s(), timeout=30) == 3
