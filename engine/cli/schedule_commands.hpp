#pragma once

/// @file
/// Internal to the command line: `trellis schedule add|list|pause|resume|
/// trigger|delete` on a store file (docs/cli.md "Schedules",
/// docs/schedules.md). They write only the store's `schedules` table, each
/// change a compare-and-set, so they work beside a running `serve`, whose
/// scheduler sees the change at its next look (at most a second later).

#include "trellis/task.hpp"

#include <CLI/CLI.hpp>

#include <memory>

namespace trellis::cli {

class schedule_commands {
 public:
  /// Registers `schedule` and its subcommands on `app`.
  explicit schedule_commands(CLI::App& app);
  ~schedule_commands();
  schedule_commands(const schedule_commands&) = delete;
  schedule_commands& operator=(const schedule_commands&) = delete;

  /// Whether the command line chose `schedule` (after parsing).
  bool chosen() const;
  /// Runs the chosen subcommand; its exit code. `tasks` checks the names in
  /// a workflow file being added (none registered: not checked).
  int run(const task_registry& tasks);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace trellis::cli
