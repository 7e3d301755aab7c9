"""``python3 -m trellis worker --app MODULE --broker URL [worker flags]``:
a cluster worker running the Python tasks of ``MODULE``'s app.

It imports MODULE (the current directory first on the path, as Celery
does), takes its ``App`` (``MODULE:attr``, else the attribute ``app``, else
the module's only App) and hands the rest of the command line to the C++
``trellis::worker_main``: the flags are ``trellis-demo worker``'s
(``--broker``, ``--namespace``, ``--queues``, ``--concurrency``, security,
limits; docs/cluster.md). It serves until SIGTERM or SIGINT, then drains
and exits 143.
"""

import importlib
import os
import sys

from . import _native
from .app import App

USAGE = "usage: python3 -m trellis worker --app MODULE[:ATTRIBUTE] --broker URL [worker flags; --help lists them]"


def find_app(spec):
    """The App that ``MODULE[:ATTRIBUTE]`` names."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        # The module's own failing imports come here too: say which.
        raise SystemExit(f"error: cannot import the app module {module_name}: {e}") from None
    if attribute:
        app = getattr(module, attribute)
    elif isinstance(getattr(module, "app", None), App):
        app = module.app
    else:
        apps = [v for v in vars(module).values() if isinstance(v, App)]
        if len(apps) != 1:
            raise SystemExit(f"error: {module_name} has {len(apps)} trellis.App objects; name one: {module_name}:ATTR")
        app = apps[0]
    if not isinstance(app, App):
        raise SystemExit(f"error: {spec} is not a trellis.App")
    return app


def split_app(argv):
    """(the --app/-A value, the other arguments)."""
    rest = []
    spec = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--app", "-A") and i + 1 < len(argv):
            spec = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--app="):
            spec = arg[len("--app="):]
        else:
            rest.append(arg)
        i += 1
    return spec, rest


def main(argv):
    """Runs the worker; returns its exit code (docs/cli.md's codes)."""
    spec, rest = split_app(argv)
    if spec is None:
        if any(a in ("-h", "--help") for a in rest):
            print(USAGE)
            return _native.worker_main(["python3 -m trellis"] + rest, _native.TaskRegistry())
        print(USAGE, file=sys.stderr)
        return 2
    app = find_app(spec)
    if not app.tasks:
        print(f"error: the app of {spec} has no tasks", file=sys.stderr)
        return 2
    sys.stdout.flush()
    return _native.worker_main(["python3 -m trellis"] + rest, app._registry)
