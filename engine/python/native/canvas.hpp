#pragma once

/// @file
/// The canvas for Python: `trellis._native.Canvas` is a `trellis::canvas`,
/// built only through the C++ builders (`signature`, `chain`, `group`,
/// `chord`), so a Python canvas normalizes exactly as a C++ one does
/// (canvas.hpp) and its options are checked by the workflow-file parser, the
/// one place that validates them. The Celery-shaped objects users hold
/// (trellis/canvas.py) turn into one of these when submitted.

#include "trellis/canvas.hpp"

#include <pybind11/pybind11.h>

namespace trellis::python {

/// A signature of `task` with positional `args`, keyword `kwargs` and
/// `options` in the workflow-file shape ({"queue": ..., "countdown_ms": ...,
/// "retry": {...}}, docs/canvas.md). Raises InvalidWorkflow naming the bad
/// option, TypeError for an argument that is not a value.
canvas make_signature(const std::string& task, pybind11::handle args, pybind11::handle kwargs,
                      pybind11::handle options);

/// Adds `Canvas`, `signature`, `chain`, `group`, `chord` and
/// `canvas_from_value` to the module.
void bind_canvas(pybind11::module_& m);

}  // namespace trellis::python
