#pragma once

/// @file
/// The cluster worker for Python: `trellis._native.worker_main` runs
/// `trellis::worker_main` (cli_main.hpp) with the tasks of a `TaskRegistry`,
/// so `python3 -m trellis worker` takes exactly the flags, environment
/// variables and config file of `trellis-demo worker` and serves over NATS
/// until SIGTERM or SIGINT, then drains.

#include <pybind11/pybind11.h>

namespace trellis::python {

/// Adds `worker_main` to the module.
void bind_worker(pybind11::module_& m);

}  // namespace trellis::python
