"""Canvas building in Celery's shape, checked against the engine's own
workflow-file shape (no engine runs here)."""

import datetime

import pytest

import trellis

app = trellis.App()


@app.task
def add(x, y):
    return x + y


@app.task
def xsum(values):
    return sum(values)


@app.task(queue="math", autoretry_for=(ConnectionError,), max_retries=3, default_retry_delay=0.5)
def fetch(url):
    return url


def step(task, args=(), kwargs=None, options=None):
    """A task in the engine's workflow-file shape, as `to_value` gives it."""
    out = {"task": task, "args": list(args), "kwargs": dict(kwargs or {})}
    if options:
        out["options"] = options
    return out


def test_a_signature_is_the_task_with_its_arguments():
    assert add.s(2, 2).to_value() == step("add", [2, 2])
    assert add.s(2, y=3).to_value() == step("add", [2], {"y": 3})
    assert trellis.signature("remote", (1,), {"k": "v"}).to_value() == step("remote", [1], {"k": "v"})


def test_pipe_makes_a_chain_and_chains_flatten():
    flow = add.s(2, 2) | add.s(4) | add.s(8)
    assert flow.to_value() == {"chain": [step("add", [2, 2]), step("add", [4]), step("add", [8])]}
    assert trellis.chain(add.s(1, 1), add.s(2)).to_value() == (add.s(1, 1) | add.s(2)).to_value()


def test_group_takes_members_or_a_list():
    assert trellis.group(add.s(1, 1), add.s(2, 2)).to_value() == trellis.group([add.s(1, 1), add.s(2, 2)]).to_value()
    assert trellis.group(add.s(1, 1), add.s(2, 2)).to_value() == {"group": [step("add", [1, 1]), step("add", [2, 2])]}


def test_chord_header_then_body():
    flow = trellis.chord([add.s(1, 1), add.s(2, 2)])(xsum.s())
    expected = {"chord": {"header": [step("add", [1, 1]), step("add", [2, 2])], "body": step("xsum")}}
    assert flow.to_value() == expected
    assert trellis.chord(trellis.group(add.s(1, 1), add.s(2, 2)), xsum.s()).to_value() == expected


def test_a_group_followed_by_a_step_is_a_chord_as_in_celery():
    flow = trellis.group(add.s(1, 1), add.s(2, 2)) | xsum.s()
    assert flow.to_value() == trellis.chord([add.s(1, 1), add.s(2, 2)])(xsum.s()).to_value()


def test_si_is_immutable():
    assert add.si(5, 5).to_value() == step("add", [5, 5], options={"immutable": True})
    assert add.s(5, 5).si().immutable


def test_set_returns_a_copy_with_celery_options_in_engine_units():
    sig = add.s(1, 2)
    later = sig.set(queue="q1", countdown=1.5, expires=60, time_limit=2, soft_time_limit=1, priority=3,
                    rate_limit="10/s", idempotency_key="order-1")
    assert sig.options == {}
    assert later.to_value()["options"] == {
        "queue": "q1", "countdown_ms": 1500, "expires_ms": 60000, "time_limit_ms": 2000,
        "soft_time_limit_ms": 1000, "priority": 3, "rate_limit": "10/s", "idempotency_key": "order-1"}


def test_eta_is_a_utc_time_to_the_millisecond():
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    assert add.s(1, 2).set(eta=when).to_value()["options"] == {"eta": "2030-01-02T03:04:05.678Z"}


def test_task_defaults_travel_with_its_signatures():
    options = fetch.s("u").to_value()["options"]
    assert options["queue"] == "math"
    assert options["retry"]["max_retries"] == 3
    assert options["retry"]["countdown_ms"] == 500
    assert options["retry"]["retry_on"] == ["ConnectionError"]
    # A call's own options win, and keep the task's retry filter.
    options = fetch.s("u").set(queue="other", max_retries=1).to_value()["options"]
    assert options["queue"] == "other"
    assert options["retry"]["max_retries"] == 1
    assert options["retry"]["retry_on"] == ["ConnectionError"]


def test_arguments_are_any_value():
    value = [None, True, 1, 2.5, "s", b"\x00\xff", {"k": [1, {"n": None}]}]
    assert add.s(*value).to_value()["args"] == value


def test_what_is_not_a_value_is_refused_naming_it():
    with pytest.raises(TypeError, match="set"):
        add.s({1, 2}).native()
    with pytest.raises(TypeError, match="key"):
        add.s({1: "x"}).native()
    with pytest.raises(ValueError, match="64-bit"):
        add.s(2 ** 70).native()


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match="unknown option"):
        add.s(1).set(colour="red")
    with pytest.raises(trellis.InvalidWorkflow, match="priority"):
        add.s(1).set(priority=12).native()
    with pytest.raises(trellis.InvalidWorkflow, match="rate_limit"):
        add.s(1).set(rate_limit="fast").native()


def test_an_empty_chain_and_a_chord_without_body_are_refused():
    with pytest.raises(ValueError):
        trellis.chain().native()
    with pytest.raises(ValueError, match="body"):
        trellis.chord([add.s(1, 1)]).native()


def test_a_workflow_file_dict_is_a_canvas_too():
    from trellis.canvas import as_native
    flow = as_native({"chain": [{"task": "add", "args": [1, 2]}, {"task": "add", "args": [3]}]})
    assert flow.kind == "chain"
    assert flow.task_count == 2
    with pytest.raises(trellis.InvalidWorkflow, match=r"\$"):
        as_native({"chain": "nope"})
