#pragma once

/// @file
/// A 5-field cron expression and when it next fires in a time zone.
///
/// The fields are minute (0-59), hour (0-23), day of month (1-31), month
/// (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT; 0 and 7 are Sunday).
/// Each is `*`, a number or name, a range `a-b`, any of these with a step
/// (`*/15`, `1-30/2`, `5/10` = `5-max/10`), or a comma-separated list of them.
/// As in Vixie cron, when both day fields are restricted (neither starts
/// with `*`) a day matches if either does; otherwise both must.
///
/// The times are wall times in the schedule's zone. When the clocks move:
/// a wall time that falls in a gap (spring forward) fires once, at the first
/// instant after the gap; a wall time that happens twice (fall back) fires
/// once, at its first occurrence (docs/schedules.md).

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "trellis/error.hpp"
#include "trellis/time_zone.hpp"

namespace trellis {

class cron_expression {
 public:
  /// Parses an expression. Errors: `invalid_config`, naming the field and
  /// what is wrong, also for an expression no date can ever match
  /// (`0 0 30 2 *`).
  static expected<cron_expression> parse(std::string_view text);

  /// The text it was parsed from, normalised to single spaces.
  const std::string& text() const noexcept { return text_; }

  /// Whether a wall time's minute matches (its seconds are ignored).
  bool matches(const local_time& t) const noexcept;

  /// The first instant strictly after `after` at which the expression
  /// fires in `zone`, in whole seconds (a cron time has no seconds), or none
  /// within 400 years.
  std::optional<epoch_seconds> next_after(epoch_seconds after, const time_zone& zone) const;
  /// The last instant at or before `at` at which it fires (the mirror of
  /// `next_after`), or none within 400 years.
  std::optional<epoch_seconds> last_at_or_before(epoch_seconds at, const time_zone& zone) const;

 private:
  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_; // 0..6, Sunday 0
  bool day_restricted_ = false;
  bool weekday_restricted_ = false;

  bool day_matches(int year, int month, int day) const noexcept;
};

}  // namespace trellis
