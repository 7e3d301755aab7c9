#pragma once

/// @file
/// Internal to the command line: the live progress line of a waiting
/// command (docs/cli.md "Waiting"). Only when stderr is a terminal: one
/// line on stderr, redrawn in place (`\r`) between slices of the wait (at
/// most five times a second embedded, about once a second over a cluster),
/// and erased before the outcome line goes to stdout, so that stdout's JSON
/// lines never change.

#include "trellis/value.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace trellis::cli {

/// What a status document says of a workflow's task nodes.
struct progress_counts {
  /// Nodes finished (SUCCESS, FAILURE or REVOKED).
  std::size_t done = 0;
  /// The workflow's tasks; 0 when unknown (the line then shows `done` alone).
  std::size_t total = 0;
  /// Nodes running now (STARTED), as far as the store knows.
  std::size_t running = 0;
  /// Nodes that ended FAILURE.
  std::size_t failed = 0;
};

/// The counts of a status document {.., nodes: [{state, ..}, ..]}, with
/// `total` as given.
progress_counts counts_of(const value& status, std::size_t total);

/// `3/7 nodes done, 2 running, 0 failed, 12.3 s` (`3 nodes done, ...`
/// without a total).
std::string progress_text(const progress_counts& counts, std::chrono::milliseconds elapsed);

/// Whether stderr is a terminal (isatty(2)).
bool stderr_is_terminal();

/// The line of one workflow. Disabled (every call does nothing) unless
/// `enabled`; callers pass `stderr_is_terminal()`.
class progress_line {
 public:
  /// `status` asks for the workflow's status document (nullopt when it
  /// cannot say now; the line then keeps its last counts).
  progress_line(bool enabled, std::function<std::optional<value>()> status, std::size_t total);
  ~progress_line();
  progress_line(const progress_line&) = delete;
  progress_line& operator=(const progress_line&) = delete;

  bool enabled() const noexcept { return enabled_; }
  /// Asks for the status and redraws the line.
  void tick();
  /// Erases the line, if drawn; the next tick draws it again.
  void clear();

 private:
  bool enabled_;
  std::function<std::optional<value>()> status_;
  std::size_t total_;
  std::chrono::steady_clock::time_point started_;
  progress_counts counts_;
  bool drawn_ = false;
};

}  // namespace trellis::cli
