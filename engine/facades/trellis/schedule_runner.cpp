#include "trellis/schedule_runner.hpp"

#include "trellis/log.hpp"
#include "trellis/node_state.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/zoneinfo.hpp"

#include <algorithm>

namespace trellis::detail {

namespace {

// A row another writer keeps changing is decided again at the next pass.
constexpr int max_rounds = 8;

std::optional<std::int64_t> earliest(std::optional<std::int64_t> a, std::optional<std::int64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace

schedule_runner::schedule_runner(sqlite_store& store, submit_fn submit, std::chrono::milliseconds late_grace)
    : store_(store), submit_(std::move(submit)), late_grace_(late_grace) {}

expected<time_zone> schedule_runner::zone(const std::string& name) {
  if (auto it = zones_.find(name); it != zones_.end()) return it->second;
  auto z = load_time_zone(name);
  if (!z) return z.error();
  zones_.emplace(name, *z);
  return z;
}

expected<bool> schedule_runner::still_running(const std::optional<std::string>& workflow_id) {
  if (!workflow_id) return false;
  auto found = store_.find_workflow(*workflow_id);
  if (!found) return found.error();
  return *found && !is_terminal((*found)->state);
}

expected<std::optional<std::int64_t>> schedule_runner::run_due(std::int64_t now_ms) {
  waiting_ = false;
  auto rows = store_.schedules();
  if (!rows) return rows.error();
  std::optional<std::int64_t> next;
  for (auto& row : *rows) {
    auto name = row.spec.name;
    auto due = run_one(std::move(row), now_ms);
    if (!due) {
      // One schedule's trouble (a zone file gone, a canvas this build no
      // longer accepts) must not stop the others; the store's own failure does.
      auto code = due.error().code();
      if (code == errc::store_failed || code == errc::store_locked || code == errc::store_corrupt) return due.error();
      log::warn() << "schedule " << name << ": " << to_string(due.error());
      continue;
    }
    next = earliest(next, *due);
  }
  return next;
}

expected<std::optional<std::int64_t>> schedule_runner::run_one(schedule_record row, std::int64_t now_ms) {
  for (int round = 0; round < max_rounds; ++round) {
    if (round > 0) {
      auto again = store_.find_schedule(row.spec.name);
      if (!again) return again.error();
      if (!*again) return std::optional<std::int64_t>{};  // deleted meanwhile
      row = std::move(**again);
    }
    schedule_record next = row;
    // A trigger runs whatever the pause and the overlap policy say: it is an
    // operator asking for a run now.
    if (row.trigger_at) {
      auto id = submit_(row.canvas, trigger_key(row.spec.name, *row.trigger_at));
      if (!id) return id.error();
      next.trigger_at.reset();
      next.last_workflow_id = *id;
    }
    std::optional<std::int64_t> due;
    if (!row.paused) {
      auto z = row.spec.every ? expected<time_zone>{time_zone::utc()} : zone(row.spec.zone);
      if (!z) return z.error();
      auto clock = schedule_clock::make(row.spec, std::move(*z));
      if (!clock) return clock.error();
      auto running = still_running(next.last_workflow_id);
      if (!running) return running.error();
      auto plan = plan_ticks(*clock, row.state, now_ms, *running, late_grace_);
      for (std::int64_t tick : plan.submit) {
        auto id = submit_(row.canvas, tick_key(row.spec.name, tick));
        if (!id) return id.error();
        next.last_workflow_id = *id;
      }
      if (plan.passed_over > 0) {
        log::info() << "schedule " << row.spec.name << ": passed over " << plan.passed_over << " tick(s)";
      }
      next.state = plan.next;
      due = plan.next_due;
      if (plan.next.buffered) waiting_ = true;
    }
    if (next.state == row.state && next.trigger_at == row.trigger_at && next.last_workflow_id == row.last_workflow_id) {
      return due;
    }
    next.updated_at = now_ms;
    auto written = store_.update_schedule(next);
    if (!written) return written.error();
    if (*written) return due;
    // Someone changed the row after it was read: what was submitted stays
    // submitted (its key dedupes a repeat); decide again on the new row.
  }
  return std::optional<std::int64_t>{now_ms};
}

}  // namespace trellis::detail
