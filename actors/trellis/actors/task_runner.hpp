#pragma once

/// @file
/// One task message in, one outcome envelope out: decode, find the handler,
/// run it, and turn whatever happened (a result, a retry request, an
/// exception, a poison message) into the outcome the dispatcher applies.
/// Used by the worker pool's threads; never throws.

#include "trellis/envelope.hpp"
#include "trellis/task.hpp"

#include <string_view>

namespace trellis::detail {

/// Runs the task message `bytes` with the handlers in `tasks`.
envelope run_task_message(std::string_view bytes, const task_registry& tasks);

}  // namespace trellis::detail
