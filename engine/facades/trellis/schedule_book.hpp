#pragma once

/// @file
/// Periodic schedules in an embedded store: adding, listing, pausing,
/// resuming, triggering and deleting them (docs/schedules.md).
///
/// `schedule_definition` is what an application or `trellis schedule add`
/// gives. The `schedule_book` functions act on a store connection of their
/// own (never the dispatcher's) and write only the `schedules` table, each
/// change a compare-and-set on the row's revision, retried on a conflict:
/// so `trellis schedule ... --db` may change a store a live `serve` holds,
/// and the scheduler in that process sees the change at its next look (at
/// most `defaults::schedule_poll` later). A trigger is a request written in
/// the row; the scheduler that runs the store submits it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/schedule.hpp"
#include "trellis/value.hpp"

namespace trellis {

/// A schedule to add.
struct schedule_definition {
  schedule_definition(std::string schedule_name, canvas what) : name(std::move(schedule_name)), flow(std::move(what)) {}
  /// 1..64 of [A-Za-z0-9_-]; part of every tick's submission key.
  std::string name;
  /// What each tick submits.
  canvas flow;
  /// Where the canvas came from (a workflow file's path), shown by `list`.
  std::string source;
  /// Either an interval (`--every`, 1s to 366d, whole seconds) ...
  std::optional<std::chrono::milliseconds> every;
  /// ... or a 5-field cron expression, read in `zone` (an IANA name).
  std::string cron;
  std::string zone = "UTC";
  overlap_policy overlap = overlap_policy::skip;
  catchup_policy catchup;
};

namespace detail {

class sqlite_store;

/// The schedule operations on one store connection. Not thread-safe: one
/// caller at a time (the embedded scheduler holds a mutex around it).
namespace schedule_book {

/// Adds a schedule whose ticks start after `now_ms`. Errors:
/// `invalid_config` (a bad name, interval, cron text or zone; a name in use).
expected<void> add(sqlite_store& store, const schedule_definition& def, std::int64_t now_ms);
/// Every schedule as a list document: {name, every | cron + zone, overlap,
/// catchup, source, paused, last_tick, next_tick, buffered, last_workflow,
/// trigger_pending, revision} (docs/cli.md "Schedule line").
expected<value::array> list(sqlite_store& store, std::int64_t now_ms);
/// Pauses: no tick is decided until `resume`. Errors: `not_found`.
expected<void> pause(sqlite_store& store, const std::string& name, std::int64_t now_ms);
/// Resumes; the ticks that fell while paused are passed over. Errors: `not_found`.
expected<void> resume(sqlite_store& store, const std::string& name, std::int64_t now_ms);
/// Asks for one run now, whatever the schedule's times, pause and overlap
/// policy; it is submitted with `trigger_key(name, now_ms)`. Errors: `not_found`.
expected<void> trigger(sqlite_store& store, const std::string& name, std::int64_t now_ms);
/// Deletes it; workflows it started carry on. Errors: `not_found`.
expected<void> remove(sqlite_store& store, const std::string& name);

}  // namespace schedule_book
}  // namespace detail
}  // namespace trellis
