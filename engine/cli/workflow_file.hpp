#pragma once

/// @file
/// Internal to the command line: reading a workflow file (docs/cli.md
/// "Workflow files") into a canvas, bounded and checked before anything is
/// stored or sent.

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/task.hpp"

#include <cstdint>
#include <string>

namespace trellis::cli {

/// The largest workflow file read: twice what encodes into one submission,
/// room for JSON's formatting, and a bound on the memory a mistaken path
/// can take.
std::uintmax_t max_workflow_file_bytes(const canvas_limits& limits);

/// Reads and checks a workflow file against `limits`; `check_tasks` false
/// skips the check of task names (a client without handlers leaves it to
/// the dispatcher). Errors name the file: `invalid_workflow` (unreadable,
/// too large, not JSON, not a canvas), `unknown_task`, `payload_too_large`.
expected<canvas> load_workflow_file(const std::string& path, const task_registry& tasks, const canvas_limits& limits,
                                    bool check_tasks = true);

}  // namespace trellis::cli
