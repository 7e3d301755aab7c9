#pragma once

/// @file
/// A periodic schedule and the pure decision of which ticks to submit.
///
/// A schedule names a workflow file's canvas and when to submit it: every
/// fixed interval, or at the times of a cron expression in a time zone. Each
/// tick is an instant (epoch milliseconds) and is submitted with the key
/// `schedule:<name>:<tick ms>` (`tick_key`), so submitting a tick twice — a
/// scheduler that crashed after submitting and before recording, or one that
/// lost its lease mid-tick — starts one workflow.
///
/// `plan_ticks` is the whole policy, with no clock and no I/O: given the
/// schedule, what was last decided, the time now and whether the previous
/// tick's workflow still runs, it says which ticks to submit, which to buffer
/// and which are passed over. The embedded and the cluster schedulers call
/// it, submit, then record the new state (docs/schedules.md,
/// docs/decisions/0034-schedules.md).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trellis/cron_expression.hpp"
#include "trellis/error.hpp"
#include "trellis/time_zone.hpp"

namespace trellis {

/// What a tick does while the previous tick's workflow still runs.
enum class overlap_policy : std::uint8_t {
  skip,        ///< it is passed over
  buffer_one,  ///< it waits for the previous to finish; one waits at most, later ones are passed over
  allow,       ///< it starts anyway
};

/// Which ticks missed while no scheduler ran (downtime) are submitted.
enum class catchup_kind : std::uint8_t {
  skip,  ///< none: only a tick at most `schedule_late_grace` late runs
  one,   ///< the latest missed tick
  all,   ///< every missed tick, at most `bound` of them (the latest)
};

struct catchup_policy {
  catchup_kind kind = catchup_kind::skip;
  std::uint32_t bound = 0;  ///< for `all`: 1..max_schedule_catchup_bound
  friend bool operator==(const catchup_policy& a, const catchup_policy& b) {
    return a.kind == b.kind && a.bound == b.bound;
  }
};

/// When a schedule fires and what it does when ticks collide or were missed.
struct schedule_spec {
  std::string name;
  /// An interval schedule: ticks at `anchor_ms + k * every`, k >= 1.
  std::optional<std::chrono::milliseconds> every;
  /// A cron schedule: the expression's text (parsed by `parse`) and its zone's name.
  std::string cron;
  std::string zone = "UTC";
  overlap_policy overlap = overlap_policy::skip;
  catchup_policy catchup;
  /// When the schedule was added: the first tick is after it.
  std::int64_t anchor_ms = 0;
};

/// A schedule ready to compute ticks: its spec, parsed, with its zone.
class schedule_clock {
 public:
  /// Checks the spec (name, interval bounds, the cron text) and takes the zone
  /// its cron times are read in (ignored for an interval). Errors: `invalid_config`.
  static expected<schedule_clock> make(const schedule_spec& spec, time_zone zone);

  const schedule_spec& spec() const noexcept { return spec_; }
  /// The first tick strictly after `after_ms`, or none (a cron that never fires again).
  std::optional<std::int64_t> next_after(std::int64_t after_ms) const;
  /// The last tick at or before `at_ms` and after the anchor, or none.
  std::optional<std::int64_t> last_at_or_before(std::int64_t at_ms) const;

 private:
  schedule_spec spec_;
  std::optional<cron_expression> cron_;
  time_zone zone_ = time_zone::utc();
};

/// What the scheduler has decided so far, stored with the schedule.
struct schedule_state {
  /// The latest tick decided (submitted, buffered or passed over): ticks at
  /// or before it are never considered again. None before the first tick.
  std::optional<std::int64_t> last_tick;
  /// The tick waiting for the previous run to finish (`buffer_one`).
  std::optional<std::int64_t> buffered;
  /// The tick of the latest submission, whose workflow the overlap policy watches.
  std::optional<std::int64_t> last_submitted;
  friend bool operator==(const schedule_state& a, const schedule_state& b) {
    return a.last_tick == b.last_tick && a.buffered == b.buffered && a.last_submitted == b.last_submitted;
  }
};

/// One decision of the scheduler.
struct tick_plan {
  std::vector<std::int64_t> submit;  ///< ticks to submit now, oldest first
  /// Ticks decided not to run (catch-up or overlap), for the log: exact for
  /// the ones looked at, and at least one for a downtime that was not walked.
  std::uint64_t passed_over = 0;
  schedule_state next;               ///< the state to record once `submit` is submitted
  std::optional<std::int64_t> next_due;  ///< the next tick after `next.last_tick`
};

/// Decides which ticks to submit at `now_ms` (see the file comment). A
/// paused schedule is not planned at all: the caller advances `last_tick`
/// past the pause with `resume_state`. Pure and total.
tick_plan plan_ticks(const schedule_clock& schedule, const schedule_state& state, std::int64_t now_ms,
                     bool previous_running, std::chrono::milliseconds late_grace);

/// The state of a schedule resumed at `now_ms`: the ticks that fell while it
/// was paused are passed over, as Celery beat and Temporal do.
schedule_state resume_state(const schedule_clock& schedule, schedule_state state, std::int64_t now_ms);

/// The submission key of a tick, and of a run started by `trigger` at `now_ms`.
std::string tick_key(std::string_view schedule_name, std::int64_t tick_ms);
std::string trigger_key(std::string_view schedule_name, std::int64_t now_ms);

/// Schedule names: 1..64 of [A-Za-z0-9_-] (part of a key and of a KV key).
expected<void> check_schedule_name(std::string_view name);
/// `30s`, `5m`, `2h`, `1d` (a whole number and one unit), in
/// [min_schedule_interval, max_schedule_interval]. Errors: `invalid_config`.
expected<std::chrono::milliseconds> parse_interval(std::string_view text);
/// The shortest text `parse_interval` reads back as `every`.
std::string interval_text(std::chrono::milliseconds every);
expected<overlap_policy> parse_overlap(std::string_view text);
std::string_view to_string(overlap_policy p) noexcept;
/// `skip`, `one`, `all` (bound: schedule_catchup_bound) or `all:N`.
expected<catchup_policy> parse_catchup(std::string_view text);
std::string to_string(const catchup_policy& p);

}  // namespace trellis
