"""Python exceptions become typed task errors: a failed workflow's wait
raises WorkflowFailed with the exception's class name and message, the step
lands in the dead letters; Reject, TaskError, Revoked and Timeout."""

import threading

import pytest

import trellis

app = trellis.App(concurrency=2)
release_gate = threading.Event()


class PaymentDeclined(Exception):
    pass


@app.task
def charge(amount):
    raise PaymentDeclined(f"card declined for {amount}")


@app.task
def reject(value):
    raise trellis.Reject(f"cannot ever handle {value!r}")


@app.task
def typed():
    raise trellis.TaskError("gateway_timeout", "the gateway did not answer")


@app.task
def not_a_value():
    return object()


@app.task
def gate():
    # Bounded, so that a failing test cannot hang the engine's drain.
    release_gate.wait(60)
    return "opened"


@app.task
def add(x, y):
    return x + y


@pytest.fixture(scope="module", autouse=True)
def engine():
    with app:
        yield app
        release_gate.set()  # before the drain, which waits for running tasks


def test_an_exception_fails_the_workflow_with_its_type_and_message():
    run = app.submit(add.s(1, 2) | charge.s())
    with pytest.raises(trellis.WorkflowFailed) as raised:
        run.wait(30)
    failed = raised.value
    assert failed.type == "PaymentDeclined"
    assert failed.message == "card declined for 3"
    assert failed.task == "charge"
    assert isinstance(failed.node, int)
    assert failed.code == "workflow_failed"
    assert run.state == "FAILURE"
    assert run.error_details["type"] == "PaymentDeclined"


def test_the_failed_step_is_a_dead_letter():
    run = app.submit(charge.s(7))
    with pytest.raises(trellis.WorkflowFailed):
        run.wait(30)
    letters = [d for d in app.dead_letters() if d["workflow_id"] == run.id]
    assert len(letters) == 1
    assert letters[0]["task"] == "charge"
    assert "card declined for 7" in letters[0]["error"]


def test_reject_fails_at_once_as_bad_arguments():
    run = app.submit(reject.s("x").set(max_retries=5, default_retry_delay=0.01))
    with pytest.raises(trellis.WorkflowFailed) as raised:
        run.wait(30)
    assert "cannot ever handle 'x'" in raised.value.message
    letters = [d for d in app.dead_letters() if d["workflow_id"] == run.id]
    assert [d["reason"] for d in letters] == ["bad_arguments"]
    assert letters[0]["attempts"] == 1


def test_a_task_error_keeps_its_own_type():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(typed.s(), timeout=30)
    assert raised.value.type == "gateway_timeout"
    assert raised.value.message == "the gateway did not answer"


def test_a_result_that_is_not_a_value_is_a_type_error():
    with pytest.raises(trellis.WorkflowFailed) as raised:
        app.run(not_a_value.s(), timeout=30)
    assert raised.value.type == "TypeError"
    assert "not_a_value" in raised.value.message


def test_a_wait_that_ends_first_raises_timeout_and_the_workflow_goes_on():
    release_gate.clear()
    run = app.submit(gate.s())
    with pytest.raises(trellis.Timeout):
        run.wait(0.05)
    with pytest.raises(TimeoutError):  # Timeout is a TimeoutError too
        run.wait(0.01)
    release_gate.set()
    assert run.wait(30) == "opened"


def test_a_revoked_workflow_raises_revoked():
    release_gate.clear()
    blocker = app.submit(gate.s())
    # The step behind the gate cannot start before it opens.
    run = app.submit(gate.s() | add.s("!"))
    answer = app.revoke(run.id)
    assert answer["state"] == "REVOKED"
    with pytest.raises(trellis.Revoked):
        run.wait(30)
    release_gate.set()
    assert blocker.wait(30) == "opened"
    assert run.state == "REVOKED"


def test_unknown_workflow_is_not_found():
    with pytest.raises(trellis.NotFound):
        app.status("0" * 32)
