#!/usr/bin/env python3
"""Checks that no source file includes a header of a layer above its own.

The layers, bottom to top (docs/architecture.md draws them):

  1 values and errors  workflows/values/   value, error, clock, defaults, the msgpack codec
  2 workflow logic     workflows/logic/    canvas, tasks, retry policies, the workflow graph (pure)
  3 services           engine/services/    envelope, signing, metrics, store, transport
  4 actors             actors/             supervisor, dispatcher, worker pool
  5 facades            engine/facades/     embedded engine, cluster node, cluster client
  6 CLI                engine/cli/         the command line and the one public include
  7 Python bindings    engine/python/      the `trellis` Python package's C++ module (native/)

Each folder is an include root: `#include "trellis/value.hpp"` names a file
under one of them. A quoted include is looked up in every root; the layer of
the root that has it must not be above the including file's layer. A quoted
include found in no root fails too (a header that moved without its users).
A header CMake generates (`trellis/version.hpp`) counts as found where its
template (`trellis/version.hpp.in`) is.

Usage: scripts/check_layers.py [REPO]   (exit 0: clean; 1: violations, listed)
Run by ctest (test `layers`), so CI runs it.
"""

import re
import sys
from pathlib import Path

LAYERS = [
    ("values and errors", "workflows/values"),
    ("workflow logic", "workflows/logic"),
    ("services", "engine/services"),
    ("actors", "actors"),
    ("facades", "engine/facades"),
    ("CLI", "engine/cli"),
    ("Python bindings", "engine/python"),
]

# The CLI's own headers are included as "cli/..." from the engine folder.
EXTRA_ROOTS = [("engine", 5)]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def layer_of_file(repo: Path, path: Path):
    rel = path.relative_to(repo).as_posix()
    for index, (_, folder) in enumerate(LAYERS):
        if rel.startswith(folder + "/"):
            return index
    return None


def resolve(repo: Path, including: Path, name: str):
    """The layer an include resolves to, or None when it names no file."""
    if (including.parent / name).is_file():
        return layer_of_file(repo, including.parent / name)
    roots = [(folder, index) for index, (_, folder) in enumerate(LAYERS)] + EXTRA_ROOTS
    for folder, index in roots:
        if (repo / folder / name).is_file() or (repo / folder / (name + ".in")).is_file():
            return index
    return None


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    problems = []
    checked = 0
    for _, folder in LAYERS:
        for path in sorted((repo / folder).rglob("*")):
            if path.suffix not in (".hpp", ".cpp", ".h") or not path.is_file():
                continue
            own = layer_of_file(repo, path)
            checked += 1
            text = path.read_text(encoding="utf-8")
            for match in INCLUDE.finditer(text):
                name = match.group(1)
                target = resolve(repo, path, name)
                line = text.count("\n", 0, match.start()) + 1
                where = f"{path.relative_to(repo).as_posix()}:{line}"
                if target is None:
                    problems.append(f"{where}: \"{name}\" is in no layer's folder")
                elif target > own:
                    problems.append(
                        f"{where}: {LAYERS[own][0]} includes \"{name}\" from {LAYERS[target][0]}, a layer above")
    if checked == 0:
        problems.append("no source file found under the layer folders")
    for p in problems:
        print(p)
    print(f"check_layers: {checked} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
