#pragma once

/// @file
/// The embedded scheduler's decisions, one pass at a time, on a clock the
/// caller reads (so tests drive it on virtual time).
///
/// `run_due(now)` reads every schedule row, and for each one not paused:
/// submits a waiting trigger, then asks `plan_ticks` which due ticks to
/// submit, submits each with its tick key, and only then records the new
/// state with a compare-and-set on the row's revision. A crash between the
/// submission and the record repeats the same ticks with the same keys at
/// the next start, and the store's submit key makes the repeat the same
/// workflow: no tick runs twice, none the policy keeps is lost
/// (docs/decisions/0034-schedules.md). A row that changed meanwhile (a
/// `schedule` command) is read again and decided afresh.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "trellis/defaults.hpp"
#include "trellis/error.hpp"
#include "trellis/schedule.hpp"
#include "trellis/time_zone.hpp"
#include "trellis/value.hpp"

namespace trellis::detail {

class sqlite_store;
struct schedule_record;

class schedule_runner {
 public:
  /// Submits a canvas (value shape) with a submission key; the workflow id.
  /// A key submitted before gives the workflow it started.
  using submit_fn = std::function<expected<std::string>(const value& canvas, const std::string& key)>;

  /// `store` is a connection of the runner's own, used only from the
  /// caller's thread; `late_grace` is the `skip` catch-up's.
  schedule_runner(sqlite_store& store, submit_fn submit,
                  std::chrono::milliseconds late_grace = defaults::schedule_late_grace);

  /// Decides and submits what is due at `now_ms`; returns the earliest time
  /// anything is due next (none: nothing scheduled). While a tick is
  /// buffered behind a running workflow, the caller looks again at most
  /// `defaults::schedule_poll` later anyway. Errors: the store's (the caller
  /// logs them and tries again at its next look); a schedule whose canvas
  /// or zone cannot be used is logged and left, not fatal.
  expected<std::optional<std::int64_t>> run_due(std::int64_t now_ms);

  /// Whether the last pass left a tick buffered behind a running workflow.
  bool waiting_on_overlap() const noexcept { return waiting_; }

 private:
  expected<std::optional<std::int64_t>> run_one(schedule_record row, std::int64_t now_ms);
  expected<bool> still_running(const std::optional<std::string>& workflow_id);
  expected<time_zone> zone(const std::string& name);

  sqlite_store& store_;
  submit_fn submit_;
  std::chrono::milliseconds late_grace_;
  std::map<std::string, time_zone> zones_;
  bool waiting_ = false;
};

}  // namespace trellis::detail
