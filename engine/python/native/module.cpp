/// @file
/// `trellis._native`: the C++ half of the Python package (docs/python.md).
/// Users import `trellis`; this module is its engine room, one binding file
/// per responsibility.

#include "native/canvas.hpp"
#include "native/client.hpp"
#include "native/engine.hpp"
#include "native/errors.hpp"
#include "native/python_tasks.hpp"
#include "native/worker.hpp"

#include "trellis/version.hpp"

#include <pybind11/pybind11.h>

PYBIND11_MODULE(_native, m) {
  m.doc() = "Trellis engine bindings; use the `trellis` package.";
  m.attr("__version__") = TRELLIS_VERSION;
  trellis::python::register_error_translation();
  trellis::python::bind_canvas(m);
  trellis::python::bind_python_tasks(m);
  trellis::python::bind_engine(m);
  trellis::python::bind_client(m);
  trellis::python::bind_worker(m);
}
