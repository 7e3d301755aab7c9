#pragma once

/// @file
/// Trellis errors as Python exceptions. The exception classes are defined
/// in Python (trellis/errors.py), where users read and subclass them; the
/// C++ side only asks `trellis.errors.from_native(code, message, details)`
/// for the instance to raise, so the mapping from error codes to classes
/// lives in one place:
///
///   workflow_failed -> WorkflowFailed (.type, .message, .task, .node)
///   revoked         -> Revoked        timeout -> Timeout
///   anything else   -> TrellisError with .code (InvalidWorkflow,
///                      BrokerUnavailable, ... for the common ones)

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <pybind11/pybind11.h>

namespace trellis::python {

/// Raises the Python exception for `err` (with the GIL held): sets it and
/// throws `pybind11::error_already_set`. `details` is a failed or revoked
/// workflow's error details (engine.hpp `error_details()`), nil otherwise.
[[noreturn]] void raise_error(const error& err, const value& details = {});

/// The value of `result`, or raises its error.
template <class T>
T value_or_raise(expected<T> result) {
  if (!result) {
    raise_error(result.error());
  }
  return std::move(*result);
}

/// Registers the translation of `usage_error` (ValueError) and
/// `setup_error` (TrellisError of its code) thrown through a binding.
void register_error_translation();

}  // namespace trellis::python
