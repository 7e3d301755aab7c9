"""The embedded engine with tasks written in Python.

    app = trellis.App(db="orders.db")

    @app.task
    def add(x, y):
        return x + y

    app.run(add.s(2, 2) | add.s(4))       # 8

``App`` holds a task registry and, from the first submission (or
``start()``), a C++ ``trellis::engine`` running those tasks on its own
threads. Register every task before that: the engine keeps a copy of the
registry, as in C++. A cluster worker serves the same app's tasks over NATS
(``python3 -m trellis worker --app module``).
"""

import atexit
import threading
import weakref

from . import _native
from .canvas import Signature, as_native
from .options import to_engine


# Apps with a running engine, closed at exit: draining needs the running
# tasks to finish, and they need a working interpreter, which it no longer
# is once it finalizes (when an App left open would otherwise be freed).
_RUNNING = weakref.WeakSet()


@atexit.register
def _close_running_apps():
    for app in list(_RUNNING):
        app.close()


class Task:
    """A registered task: call it to run the function here, or build
    signatures with ``s``/``si`` to run it in a workflow."""

    def __init__(self, app, fn, name, defaults, bind):
        self.app = app
        self.fn = fn
        self.name = name
        self.defaults = defaults
        self.bind = bind
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def s(self, *args, **kwargs):
        """A signature: in a chain, the previous result comes first."""
        return Signature(self.name, args, kwargs, defaults=self.defaults, app=self.app)

    def si(self, *args, **kwargs):
        """An immutable signature: it ignores the previous result."""
        return self.s(*args, **kwargs).si()

    def signature(self, args=(), kwargs=None, **options):
        return Signature(self.name, args, kwargs, options, defaults=self.defaults, app=self.app)

    def apply_async(self, args=(), kwargs=None, key=None, **options):
        """Submits one call of the task to its app; returns a ``Result``."""
        return self.app.submit(self.signature(args, kwargs, **options), key=key)

    def delay(self, *args, **kwargs):
        return self.apply_async(args, kwargs)

    def __repr__(self):
        return f"<trellis task {self.name}>"


class Result:
    """A submitted workflow (Celery's AsyncResult)."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def id(self):
        return self._handle.id

    def wait(self, timeout=None):
        """The result; raises WorkflowFailed, Revoked or Timeout (``timeout``
        in seconds, None for no limit). The GIL is released meanwhile."""
        return self._handle.wait(timeout)

    get = wait

    @property
    def state(self):
        """SUCCESS, FAILURE, REVOKED, or STARTED while it runs."""
        return self._handle.state

    def ready(self):
        return self.state != "STARTED"

    @property
    def error_details(self):
        """After FAILURE or REVOKED: {task, node, type, message}; else None."""
        return self._handle.error_details

    def __repr__(self):
        return f"<trellis result {self.id}>"


class App:
    """Tasks written in Python and the embedded engine that runs them.

    ``db``: the SQLite store (":memory:" keeps nothing; a file survives a
    crash and finishes what was unfinished when opened again).
    ``concurrency``: handler threads (0: one per hardware thread).
    The other keywords are ``trellis::engine_config``'s: ``synchronous``,
    ``queues``, ``jitter_seed``, ``max_batch``, ``fetch_batch``.
    """

    def __init__(self, name=None, db=":memory:", concurrency=0, **engine_options):
        self.name = name
        self.engine_options = dict(engine_options, db=db, concurrency=concurrency)
        self.tasks = {}
        self._registry = _native.TaskRegistry()
        self._engine = None
        self._lock = threading.Lock()

    # -- tasks ---------------------------------------------------------------

    def task(self, fn=None, *, name=None, bind=False, **options):
        """Registers a function as a task: ``@app.task`` or
        ``@app.task(name=..., bind=True, autoretry_for=(IOError,), max_retries=3, queue=...)``.

        ``name`` defaults to the function's name. With ``bind=True`` the
        function gets a ``TaskContext`` first (workflow_id, node, attempt,
        idempotency_key, cancelled, report_progress, set_state). The options
        (trellis.options) are the task's defaults; a signature's own win.
        """

        def register(f):
            task_name = name or f.__name__
            if self._engine is not None:
                raise RuntimeError(f"task {task_name}: register tasks before the engine starts")
            defaults = to_engine(options)
            self._registry.add(task_name, f, defaults, bind)
            task = Task(self, f, task_name, defaults, bind)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def signature(self, name, args=(), kwargs=None, **options):
        """A signature of a task by name (registered here or not)."""
        task = self.tasks.get(name)
        return Signature(name, args, kwargs, options, defaults=task.defaults if task else None, app=self)

    # -- the engine ----------------------------------------------------------

    def start(self):
        """Starts the engine (the first submission does it too); returns the app."""
        with self._lock:
            if self._engine is None:
                self._engine = _native.Engine(self._registry, self.engine_options)
                _RUNNING.add(self)
        return self

    @property
    def engine(self):
        return self.start()._engine

    def submit(self, canvas, key=None):
        """Submits a canvas (or a workflow-file dict); returns once it is
        committed. With ``key``, a second submission of the same key returns
        the first workflow."""
        return Result(self.engine.submit(as_native(canvas), key))

    def run(self, canvas, timeout=None, key=None):
        """Submits and waits: the workflow's result, or WorkflowFailed,
        Revoked, Timeout."""
        return self.submit(canvas, key=key).wait(timeout)

    def find(self, workflow_id):
        return Result(self.engine.find(workflow_id))

    def restored(self):
        """The workflows unfinished when the store was opened, being finished now."""
        return [Result(h) for h in self.engine.restored()]

    def status(self, workflow_id):
        """The status document (docs/cli.md "Status line") as a dict."""
        return self.engine.status(workflow_id)

    def revoke(self, workflow_id, node=None, terminate=False):
        return self.engine.revoke(workflow_id, node, terminate)

    def dead_letters(self):
        """Every dead letter, newest first, as dicts (docs/cli.md "Dead-letter line")."""
        return self.engine.dead_letters()

    def replay_dead_letter(self, letter_id):
        return Result(self.engine.replay_dead_letter(letter_id))

    def metrics_text(self, openmetrics=False):
        return self.engine.metrics_text(openmetrics)

    def close(self):
        """Drains the engine (running tasks finish) and stops it; idempotent."""
        with self._lock:
            engine, self._engine = self._engine, None
            _RUNNING.discard(self)
        if engine is not None:
            engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
