"""Trellis for Python: workflows of Python tasks on the Trellis C++ engine.

    import trellis

    app = trellis.App()                    # embedded: one process, one SQLite file

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def xsum(xs):
        return sum(xs)

    flow = add.s(2, 2) | trellis.chord([add.s(1), add.s(2)])(xsum.s())
    app.run(flow, timeout=10)              # 11

A cluster: ``trellis.Client(broker=...)`` submits, ``python3 -m trellis
worker --app module --broker URL`` runs the module's tasks. docs/python.md
has the whole story.
"""

from . import _native
from .app import App, Result, Task
from .canvas import Canvas, Chain, Chord, Group, Signature, chain, chord, group, signature
from .client import Client, workflow_id_for_key
from .errors import (BrokerUnavailable, InvalidWorkflow, NotFound, Reject, Retry, Revoked,
                     SoftTimeLimitExceeded, TaskError, Timeout, TrellisError, WorkflowFailed)

TaskContext = _native.TaskContext
__version__ = _native.__version__

__all__ = [
    "App", "Task", "Result", "TaskContext",
    "Canvas", "Signature", "Chain", "Group", "Chord", "chain", "group", "chord", "signature",
    "Client", "workflow_id_for_key",
    "TrellisError", "WorkflowFailed", "Revoked", "Timeout", "InvalidWorkflow", "NotFound",
    "BrokerUnavailable", "Retry", "Reject", "TaskError", "SoftTimeLimitExceeded",
]
