"""Canvas builders in Celery's shape.

    add.s(2, 2) | add.s(4)                 a chain: 4, then 8
    group(add.s(1, 1), add.s(2, 2))        a group: [2, 4]
    chord([add.s(1, 1), add.s(2, 2)])(xsum.s())   a chord: 6
    add.si(5, 5)                           immutable: ignores the previous result
    add.s(2, 2).set(queue="math", countdown=1)    options (see trellis.options)

These objects are immutable: ``set``, ``|`` and friends return new ones
(Celery's ``set`` changes the signature in place). They become a C++
``trellis::canvas`` only when submitted (``native()``), through the C++
builders, so normalization (a group followed by a step is a chord, nested
groups flatten, ...) and option checks are exactly the engine's
(docs/canvas.md).
"""

from . import _native
from .options import to_engine


class Canvas:
    """Anything that can be submitted: a signature, chain, group or chord."""

    def native(self):
        """This canvas as a ``trellis._native.Canvas`` (checked by the engine)."""
        raise NotImplementedError

    def to_value(self):
        """The canvas in the workflow-file shape (dicts and lists), normalized."""
        return self.native().to_value()

    def __or__(self, other):
        if not isinstance(other, Canvas):
            return NotImplemented
        return Chain(self, other)

    def apply_async(self, app=None, key=None, **options):
        """Submits to ``app`` (by default the app of the first task in it)."""
        target = self.set(**options) if options else self
        app = app or target._app()
        if app is None:
            raise ValueError("no app to submit to: pass app=..., or use app.submit(canvas)")
        return app.submit(target, key=key)

    def delay(self):
        return self.apply_async()

    def set(self, **options):
        raise TypeError(f"options are set on task signatures, not on a {type(self).__name__}")

    def _app(self):
        return None


class Signature(Canvas):
    """One task call: a task name, arguments, keyword arguments and options.

    ``defaults`` are the task's registration options (engine shape); they
    travel with the signature, under its own options, so that a cluster
    dispatcher that has never seen the task applies them as the embedded
    engine does.
    """

    __slots__ = ("task", "args", "kwargs", "options", "immutable", "defaults", "app")

    def __init__(self, task, args=(), kwargs=None, options=None, immutable=False, defaults=None, app=None):
        self.task = task if isinstance(task, str) else task.name
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.immutable = bool(immutable)
        self.defaults = dict(defaults or {})
        self.app = app
        to_engine(self.options)  # unknown names and wrong types fail here, not at submit

    def set(self, **options):
        """A copy with these options added (Celery-style names, trellis.options)."""
        merged = dict(self.options)
        merged.update(options)
        return self._with(options=merged)

    def clone(self, args=(), kwargs=None, **options):
        """A copy with ``args`` appended (Celery's partial arguments),
        ``kwargs`` merged and options added."""
        merged_kwargs = dict(self.kwargs)
        merged_kwargs.update(kwargs or {})
        merged_options = dict(self.options)
        merged_options.update(options)
        return self._with(args=self.args + tuple(args), kwargs=merged_kwargs, options=merged_options)

    def si(self):
        """This signature, immutable."""
        return self._with(immutable=True)

    def native(self):
        options = dict(self.defaults)
        own = to_engine(self.options)
        if "retry" in own and "retry" in options:
            # max_retries=5 on a call keeps the task's autoretry_for.
            own["retry"] = {**options["retry"], **own["retry"]}
        options.update(own)
        if self.immutable:
            options["immutable"] = True
        return _native.signature(self.task, list(self.args), self.kwargs, options)

    def _with(self, **changes):
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Signature(**fields)

    def _app(self):
        return self.app

    def __repr__(self):
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}.{'si' if self.immutable else 's'}({', '.join(args)})"

    def __eq__(self, other):
        return isinstance(other, Signature) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__ if name != "app")


def _members(tasks):
    # Celery accepts group(a, b) and group([a, b]) alike.
    if len(tasks) == 1 and not isinstance(tasks[0], Canvas):
        tasks = tuple(tasks[0])
    for t in tasks:
        if not isinstance(t, Canvas):
            raise TypeError(f"a canvas member must be a signature, chain, group or chord, not {t!r}")
    return tuple(tasks)


class Chain(Canvas):
    """Steps run one after another, each getting the previous result first."""

    def __init__(self, *tasks):
        steps = []
        for t in _members(tasks):
            steps.extend(t.tasks if isinstance(t, Chain) else (t,))
        self.tasks = tuple(steps)

    def __or__(self, other):
        if not isinstance(other, Canvas):
            return NotImplemented
        return Chain(*self.tasks, other)

    def native(self):
        return _native.chain([t.native() for t in self.tasks])

    def _app(self):
        return next((t._app() for t in self.tasks if t._app() is not None), None)

    def __repr__(self):
        return " | ".join(repr(t) for t in self.tasks)


class Group(Canvas):
    """Members run side by side with the same input; the result is their
    results as a list, in order."""

    def __init__(self, *tasks):
        self.tasks = _members(tasks)

    def native(self):
        return _native.group([t.native() for t in self.tasks])

    def _app(self):
        return next((t._app() for t in self.tasks if t._app() is not None), None)

    def __repr__(self):
        return f"group({', '.join(repr(t) for t in self.tasks)})"


class Chord(Canvas):
    """A header group whose results, as a list, are the body's first argument.

    ``chord(header)(body)`` or ``chord(header, body)``.
    """

    def __init__(self, header, body=None):
        if isinstance(header, Group):
            header = header.tasks
        elif isinstance(header, Canvas):
            header = (header,)
        self.header = _members((tuple(header),))
        if body is not None and not isinstance(body, Canvas):
            raise TypeError(f"a chord body must be a canvas, not {body!r}")
        self.body = body

    def __call__(self, body):
        if self.body is not None:
            raise TypeError("this chord has a body already")
        return Chord(self.header, body)

    def native(self):
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header)(body)")
        return _native.chord([t.native() for t in self.header], self.body.native())

    def _app(self):
        members = self.header + ((self.body,) if self.body is not None else ())
        return next((t._app() for t in members if t._app() is not None), None)

    def __repr__(self):
        return f"chord([{', '.join(repr(t) for t in self.header)}])({self.body!r})"


def chain(*tasks):
    """``chain(a, b, c)`` is ``a | b | c``."""
    return Chain(*tasks)


def group(*tasks):
    """``group(a, b)`` or ``group([a, b])``."""
    return Group(*tasks)


def chord(header, body=None):
    """``chord(header)(body)`` or ``chord(header, body)``."""
    return Chord(header, body)


def signature(task, args=(), kwargs=None, **options):
    """A signature of a task by name, for tasks this process did not register
    (a cluster client's, a C++ worker's)."""
    return Signature(task, args, kwargs, options)


def as_native(flow):
    """A canvas of any accepted kind as a ``_native.Canvas``: a Canvas, or a
    workflow in the workflow-file shape (a dict, as ``json.load`` gives)."""
    if isinstance(flow, Canvas):
        return flow.native()
    if isinstance(flow, _native.Canvas):
        return flow
    if isinstance(flow, dict):
        return _native.canvas_from_value(flow)
    raise TypeError(f"not a canvas: {flow!r}")
