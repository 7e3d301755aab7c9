"""The embedded engine running Python tasks: chains, groups and chords,
arguments and results as Python values, keyword arguments, idempotent
submission, status."""

import pytest

import trellis

app = trellis.App(concurrency=2)


@app.task
def add(x, y):
    return x + y


@app.task
def xsum(values):
    return sum(values)


@app.task
def echo(value):
    return value


@app.task
def describe(a, b=10, *, c=None):
    return {"a": a, "b": b, "c": c}


@app.task(bind=True)
def whoami(ctx):
    return {"task": ctx.task, "node": ctx.node, "attempt": ctx.attempt, "workflow": ctx.workflow_id}


@pytest.fixture(scope="module", autouse=True)
def engine():
    with app:
        yield app


def test_a_chain_passes_each_result_on():
    assert app.run(add.s(2, 2) | add.s(4) | add.s(8), timeout=30) == 16


def test_a_group_gives_the_results_in_order():
    assert app.run(trellis.group(add.s(i, i) for i in range(10)), timeout=30) == [2 * i for i in range(10)]


def test_a_chord_gives_the_header_results_to_the_body():
    flow = add.s(2, 2) | trellis.chord([add.s(1), add.s(2)])(xsum.s())
    assert app.run(flow, timeout=30) == 11


def test_values_cross_unchanged():
    value = {"none": None, "bool": True, "int": -(2 ** 63), "float": 0.25, "str": "héllo", "bytes": b"\x00\xff",
             "list": [1, [2, [3]]], "tuple": [4, 5]}
    assert app.run(echo.s(value), timeout=30) == value


def test_keyword_arguments_and_defaults():
    assert app.run(describe.s(1, c="x"), timeout=30) == {"a": 1, "b": 10, "c": "x"}
    assert app.run(add.s(1, 1) | describe.s(b=2), timeout=30) == {"a": 2, "b": 2, "c": None}


def test_a_bound_task_sees_its_context():
    run = app.submit(whoami.s())
    got = run.wait(30)
    assert got == {"task": "whoami", "node": 0, "attempt": 1, "workflow": run.id}
    assert run.state == "SUCCESS"


def test_a_key_makes_a_second_submission_the_first():
    first = app.submit(add.s(1, 1), key="once")
    second = app.submit(add.s(5, 5), key="once")
    assert first.id == second.id
    assert second.wait(30) == 2


def test_status_lists_the_nodes():
    run = app.submit(add.s(1, 2) | add.s(3))
    assert run.wait(30) == 6
    status = app.status(run.id)
    assert status["state"] == "SUCCESS"
    assert status["result"] == 6


def test_unknown_tasks_are_refused_at_submit():
    with pytest.raises(trellis.TrellisError) as raised:
        app.submit(trellis.signature("nope"))
    assert raised.value.code == "unknown_task"


def test_tasks_are_registered_before_the_engine_starts():
    with pytest.raises(RuntimeError, match="before the engine starts"):
        @app.task
        def late():
            return None


def test_calling_a_task_runs_the_function_here():
    assert add(2, 3) == 5
