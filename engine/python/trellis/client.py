"""The cluster client: submit workflows to a running Trellis cluster (a
dispatcher and its workers, over NATS), wait for them, ask about them.

    client = trellis.Client(broker="nats://127.0.0.1:4222")
    run = client.submit(trellis.signature("add", (2, 2)) | trellis.signature("add", (4,)))
    run.wait(timeout=10)                   # 8

It is the C++ ``trellis::client`` (the one ``trellis submit`` uses), with
the same options under the same names: ``namespace``, ``partitions``,
``user``/``password``, ``token``, ``creds_file``, ``tls_ca_file``,
``tls_cert_file``/``tls_key_file``, ``signing_key_file`` or
``signing_key``, and ``submit_timeout``/``request_timeout`` in seconds.
Every call that talks to the broker releases the GIL.
"""

from . import _native
from .app import Result
from .canvas import as_native


class Client:
    """A connection to a cluster's broker in one namespace."""

    def __init__(self, broker=None, namespace="default", partitions=1, **options):
        if broker is None and "brokers" not in options:
            raise TypeError("Client needs broker='nats://host:port' (or brokers=[...])")
        if broker is not None:
            options["brokers"] = [broker] if isinstance(broker, str) else list(broker)
        options.update(namespace=namespace, partitions=partitions)
        self._client = _native.Client(options)

    @property
    def namespace(self):
        return self._client.namespace

    def submit(self, canvas, key=None):
        """Submits and returns once the dispatcher committed it: a ``Result``.
        With ``key``, the workflow id is derived from it and a second
        submission of the same key returns the first workflow."""
        return Result(self._client.submit(as_native(canvas), key))

    def find(self, workflow_id):
        """A ``Result`` for any workflow of the namespace."""
        return Result(self._client.find(workflow_id))

    def wait(self, workflow, timeout=None):
        """The result of a workflow (a ``Result`` or its id); raises
        WorkflowFailed, Revoked or Timeout."""
        result = workflow if isinstance(workflow, Result) else self.find(workflow)
        return result.wait(timeout)

    def status(self, workflow_id):
        """The status document (docs/cli.md "Status line") as a dict."""
        return self._client.status(_id(workflow_id))

    def revoke(self, workflow_id, node=None, terminate=False):
        """Revokes a workflow, or one node of it; returns the dispatcher's answer."""
        return self._client.revoke(_id(workflow_id), node, terminate)

    def dead_letters(self, partition=0):
        return self._client.dead_letters(partition)

    def replay_dead_letter(self, letter, partition=0):
        return Result(self._client.replay_dead_letter(letter, partition))

    def close(self):
        """Drops the connection (handles still held keep it open until they go)."""
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _id(workflow):
    return workflow.id if isinstance(workflow, Result) else workflow


def workflow_id_for_key(namespace, key):
    """The workflow id a submission keyed ``key`` gets in ``namespace``."""
    return _native.workflow_id_for_key(namespace, key)
