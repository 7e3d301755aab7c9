#pragma once

/// @file
/// Tasks written in Python: a `trellis::task_registry` whose handlers call
/// Python functions. A handler runs on an engine or worker thread, which
/// holds no GIL: it takes the GIL for the call (and for converting the
/// arguments and the result), and nothing else. So Python handlers run one
/// at a time except where they release the GIL themselves (time.sleep, I/O,
/// a C extension), as in any threaded Python program, while the engine's
/// own work goes on beside them.
///
/// How a Python handler ends:
///   returns x                       -> the step's result, x as a value
///   raises trellis.Retry(reason, countdown=s) -> a counted retry
///   raises trellis.Reject(message)  -> rejected: fails at once, dead letter `bad_arguments`
///   raises trellis.TaskError(type, message)   -> a failure of that type
///   raises trellis.SoftTimeLimitExceeded      -> `soft_time_limit_exceeded`
///   raises any other exception e    -> a failure of type type(e).__name__
///                                      and message str(e), which the retry
///                                      policy's retry_on/dont_retry_on select by
/// A result that is not a value is a failure of type TypeError.

#include "trellis/task.hpp"

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

namespace trellis::python {

/// A task registry being filled from Python (`trellis.App` owns one). The
/// engine or worker started from it keeps a copy, as in C++.
struct python_registry {
  task_registry tasks;
};

/// Adds `TaskRegistry` and `TaskContext` to the module.
void bind_python_tasks(pybind11::module_& m);

}  // namespace trellis::python
