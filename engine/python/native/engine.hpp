#pragma once

/// @file
/// The embedded engine for Python: `trellis._native.Engine` runs a
/// `trellis::engine` with the tasks of a `TaskRegistry`, and
/// `WorkflowHandle` waits on what it runs. Every call that may block
/// (starting, submitting, waiting, asking the dispatcher, draining) runs
/// without the GIL, since the engine's threads need it to run Python tasks.
/// trellis/app.py wraps these in `trellis.App`.

#include <pybind11/pybind11.h>

namespace trellis::python {

/// Adds `Engine` and `WorkflowHandle` to the module.
void bind_engine(pybind11::module_& m);

}  // namespace trellis::python
