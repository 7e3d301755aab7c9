#pragma once

/// @file
/// One task message in, one outcome envelope out: decode, find the handler,
/// run it, and turn whatever happened (a result, a retry request, an
/// exception, a poison message) into the outcome the dispatcher applies.
/// Used by the worker pool's threads; never throws.

#include "trellis/envelope.hpp"
#include "trellis/task.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace trellis::detail {

/// What running one task message produced.
struct task_run {
  /// The outcome event to report.
  envelope outcome;
  /// The queue the message came from ("" when it could not be decoded).
  std::string queue;
  /// Seconds from publication to the handler starting (consumer lag), at
  /// millisecond resolution; empty when the handler did not run.
  std::optional<double> queue_wait;
};

/// Runs the task message `bytes` with the handlers in `tasks`.
task_run run_task_message(std::string_view bytes, const task_registry& tasks);

}  // namespace trellis::detail
