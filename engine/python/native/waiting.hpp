#pragma once

/// @file
/// Waiting on a workflow from Python, for the embedded engine's and the
/// cluster client's handles alike. The wait runs without the GIL (so the
/// workflow's own Python handlers, and any other Python thread, run
/// meanwhile), in slices of at most 100 ms between which it takes the GIL
/// to let Python handle a signal: Ctrl-C interrupts a wait with
/// KeyboardInterrupt instead of being held until the workflow ends.

#include "native/errors.hpp"
#include "native/values.hpp"

#include "trellis/node_state.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

namespace trellis::python {

/// The result of `handle` (a `workflow_handle` or `client_handle`), or
/// raises WorkflowFailed, Revoked, Timeout or the error the wait gave.
/// `timeout_s`: seconds, or None for no limit. Called with the GIL held.
template <class Handle>
pybind11::object wait_for_result(const Handle& handle, std::optional<double> timeout_s) {
  using clock = std::chrono::steady_clock;
  constexpr auto slice = std::chrono::milliseconds{100};
  std::optional<clock::time_point> deadline;
  if (timeout_s) {
    deadline = clock::now() + std::chrono::milliseconds{static_cast<std::int64_t>(std::max(0.0, *timeout_s) * 1000)};
  }
  for (;;) {
    auto step = slice;
    if (deadline) {
      step = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now()),
                        std::chrono::milliseconds{0}, slice);
    }
    std::optional<expected<value>> got;
    {
      pybind11::gil_scoped_release release;
      got.emplace(handle.wait_for(step));
    }
    if (*got) {
      return to_python(**got);
    }
    const auto& err = got->error();
    if (err.code() != errc::timeout || (deadline && clock::now() >= *deadline)) {
      value details;
      if (err.code() == errc::workflow_failed || err.code() == errc::revoked) {
        pybind11::gil_scoped_release release;
        details = handle.error_details();
      }
      raise_error(err, details);
    }
    if (PyErr_CheckSignals() != 0) {
      throw pybind11::error_already_set();
    }
  }
}

/// "SUCCESS", "FAILURE", "REVOKED" or "STARTED", asked without the GIL.
template <class Handle>
std::string state_of(const Handle& handle) {
  pybind11::gil_scoped_release release;
  return std::string(to_string(handle.state()));
}

}  // namespace trellis::python
