"""The cluster: trellis.Client submits to a real nats-server and
`trellis-demo dispatcher`, and `python3 -m trellis worker --app
cluster_tasks` runs the Python tasks: submit, wait, status, revoke,
failures with their types, retries, keys."""

import os

import pytest

import trellis
from conftest import MAX_WAIT

py_add = lambda *a: trellis.signature("py_add", a)  # noqa: E731 (the client does not import the tasks)


@pytest.fixture
def client(cluster):
    cluster.start_dispatcher()
    cluster.start_python_worker(extra=["--concurrency", "2"])
    c = trellis.Client(broker=cluster.url, namespace=cluster.ns)
    yield c
    c.close()


def test_submit_and_wait_for_a_chain_and_a_chord(client, cluster):
    run = client.submit(py_add(2, 3) | py_add(4))
    assert len(run.id) == 32
    assert run.wait(MAX_WAIT) == 9, cluster.logs()
    assert run.state == "SUCCESS"
    chord = trellis.chord([py_add(1, 1), py_add(2, 2)])(trellis.signature("py_xsum"))
    assert client.wait(client.submit(chord), MAX_WAIT) == 6


def test_the_worker_process_runs_the_tasks(client):
    assert client.submit(trellis.signature("py_pid")).wait(MAX_WAIT) != os.getpid()


def test_a_python_exception_fails_the_workflow_with_its_type(client):
    run = client.submit(trellis.signature("py_fail", ("socks",)))
    with pytest.raises(trellis.WorkflowFailed) as raised:
        run.wait(MAX_WAIT)
    assert raised.value.type == "OutOfStock"
    assert raised.value.message == "no socks left"
    assert raised.value.task == "py_fail"
    letters = [d for d in client.dead_letters() if d["workflow_id"] == run.id]
    assert len(letters) == 1


def test_the_retry_options_of_a_signature_hold_in_a_cluster(client):
    flaky = trellis.signature("py_flaky", (2,)).set(autoretry_for=(ConnectionError,), max_retries=3,
                                                     default_retry_delay=0.01, retry_backoff=False)
    assert client.submit(flaky).wait(MAX_WAIT) == 3


def test_status_and_a_key(client):
    first = client.submit(py_add(1, 1), key="order-1")
    second = client.submit(py_add(7, 7), key="order-1")
    assert first.id == second.id == trellis.workflow_id_for_key(client.namespace, "order-1")
    assert second.wait(MAX_WAIT) == 2
    status = client.status(first.id)
    assert status["state"] == "SUCCESS"
    assert status["result"] == 2


def test_revoke_ends_a_running_workflow(client, cluster, tmp_path):
    gate = str(tmp_path / "gate")
    run = client.submit(trellis.signature("py_wait_for_file", (gate,)) | py_add(1))
    answer = client.revoke(run.id)
    assert answer["state"] == "REVOKED"
    with pytest.raises(trellis.Revoked):
        run.wait(MAX_WAIT)
    open(gate, "w").close()


def test_the_worker_drains_on_sigterm(cluster):
    cluster.start_dispatcher()
    worker = cluster.start_python_worker()
    client = trellis.Client(broker=cluster.url, namespace=cluster.ns)
    assert client.submit(py_add(20, 22)).wait(MAX_WAIT) == 42
    assert worker.stop() == 143, worker.stderr()


def test_no_broker_is_broker_unavailable():
    with pytest.raises(trellis.BrokerUnavailable):
        trellis.Client(broker="nats://127.0.0.1:1")
