#pragma once

/// @file
/// What a running handler says about itself before it returns: how far it
/// is (`done` of `total`, with a short message) and a custom state name of
/// its own ("UPLOADING"). Celery's `update_state(state=..., meta=...)`.
///
/// @code
/// tasks.add("import", [](trellis::task_context& ctx, std::int64_t rows) {
///   ctx.set_state("IMPORTING");
///   for (std::int64_t i = 0; i < rows; ++i) {
///     import_row(i);
///     ctx.report_progress(i + 1, rows, "rows imported");
///   }
///   return rows;
/// });
/// @endcode
///
/// A report is the attempt's whole picture: the latest one replaces the one
/// before (a custom state set once stays until `clear_state()`). The worker
/// sends the latest at most every `defaults::progress_report_interval` and
/// once more right before the outcome; the dispatcher stores it with the
/// node, and `trellis status` shows it (docs/canvas.md, "Progress and custom
/// states").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trellis {

/// The latest progress picture of one attempt.
struct task_progress {
  /// Units done so far (>= 0); empty when only a custom state was set.
  std::optional<std::int64_t> done;
  /// Units in all (>= 0), when known.
  std::optional<std::int64_t> total;
  /// At most `defaults::max_progress_message_bytes` bytes.
  std::string message;
  /// A custom state name, or empty for none.
  std::string state;

  bool operator==(const task_progress& o) const {
    return done == o.done && total == o.total && message == o.message && state == o.state;
  }
  bool operator!=(const task_progress& o) const { return !(*this == o); }
};

/// Where a running attempt's progress goes: the worker installs one per
/// attempt. Called from the handler's thread; must not block for long.
class progress_sink {
 public:
  virtual ~progress_sink() = default;
  virtual void report(const task_progress& latest) = 0;
};

/// Why `name` cannot be a custom state name (empty, longer than
/// `defaults::max_custom_state_chars`, a character outside [A-Z0-9_], or a
/// built-in state name such as STARTED), or nullopt when it can.
std::optional<std::string> custom_state_problem(std::string_view name);

/// `message` cut to at most `defaults::max_progress_message_bytes` bytes,
/// never inside a UTF-8 character.
std::string clip_progress_message(std::string message);

}  // namespace trellis
