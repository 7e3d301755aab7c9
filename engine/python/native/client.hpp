#pragma once

/// @file
/// The cluster client for Python: `trellis._native.Client` is a
/// `trellis::client` (client.hpp) connected with the options a dict gives
/// (the same names as `client_options`), and `ClientHandle` waits on a
/// workflow submitted through it. Every call that talks to the broker runs
/// without the GIL. trellis/client.py wraps these in `trellis.Client`.

#include <pybind11/pybind11.h>

namespace trellis::python {

/// Adds `Client`, `ClientHandle` and `workflow_id_for_key` to the module.
void bind_client(pybind11::module_& m);

}  // namespace trellis::python
