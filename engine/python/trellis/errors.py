"""Trellis errors as Python exceptions.

Two families:

* What a wait, submit or request raises (``TrellisError`` and its
  subclasses). ``WorkflowFailed`` carries the failed task's error type and
  message (the exception class name and ``str(e)`` of a Python task), the
  task name and the node; ``Revoked`` and ``Timeout`` say what their names
  say. Every one has ``.code``, the engine's error code (docs/errors.md).
* What a task handler raises on purpose: ``Retry`` (try again later),
  ``Reject`` (input that can never succeed), ``TaskError`` (a failure with a
  type of its own) and ``SoftTimeLimitExceeded``. Any other exception fails
  the attempt with type ``type(e).__name__``.

The C++ module calls ``from_native`` to build the exception it raises, so
this file alone maps error codes to classes.
"""


class TrellisError(Exception):
    """An error from the engine, the broker or the cluster; ``.code`` names it."""

    code = "error"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class WorkflowFailed(TrellisError):
    """A workflow ended FAILURE: ``.type`` and ``.message`` are the failed
    task's error, ``.task`` and ``.node`` where it failed."""

    code = "workflow_failed"

    def __init__(self, message, type=None, task=None, node=None, error_message=None):
        super().__init__(message)
        self.type = type
        self.task = task
        self.node = node
        # The task's own message (str(e) of its exception), not the summary.
        self.message = error_message if error_message is not None else message


class Revoked(TrellisError):
    """A workflow ended REVOKED (``.task`` and ``.node`` when one node was)."""

    code = "revoked"

    def __init__(self, message, task=None, node=None):
        super().__init__(message)
        self.task = task
        self.node = node


class Timeout(TrellisError, TimeoutError):
    """A wait ended before the workflow did; the workflow carries on."""

    code = "timeout"


class InvalidWorkflow(TrellisError, ValueError):
    """A canvas or option the engine refuses; the message names the place."""

    code = "invalid_workflow"


class NotFound(TrellisError, LookupError):
    """No such workflow, node or dead letter."""

    code = "not_found"


class BrokerUnavailable(TrellisError, ConnectionError):
    """No NATS server answered."""

    code = "broker_unavailable"


_BY_CODE = {cls.code: cls for cls in (Timeout, InvalidWorkflow, NotFound, BrokerUnavailable)}


def from_native(code, message, details=None):
    """The exception for an engine error (called by the C++ module)."""
    details = details if isinstance(details, dict) else {}
    if code == "workflow_failed":
        return WorkflowFailed(message, type=details.get("type"), task=details.get("task"),
                              node=details.get("node"), error_message=details.get("message"))
    if code == "revoked":
        return Revoked(message, task=details.get("task"), node=details.get("node"))
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    return TrellisError(message, code=code)


class Retry(Exception):
    """Raised by a task: run this step again later, as a counted retry.

    ``countdown`` (seconds) overrides the delay the retry policy would pick.
    When the retries run out the step fails with type ``retry``.
    """

    def __init__(self, reason="retry", countdown=None):
        super().__init__(reason)
        self.countdown = countdown


class Reject(Exception):
    """Raised by a task for input that can never succeed: the step fails at
    once, without retries, and its message goes to the dead letters."""


class TaskError(Exception):
    """Raised by a task for a failure with a type of its own, which retry
    filters (``autoretry_for``/``retry_on``) select by."""

    def __init__(self, type, message=""):
        super().__init__(message)
        self.type = type
        self.message = message


class SoftTimeLimitExceeded(Exception):
    """Raised by a task that stops because its soft time limit passed
    (``ctx.cancelled`` became true)."""
