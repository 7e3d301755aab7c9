#pragma once

/// @file
/// A time zone from its TZif bytes (RFC 8536), for schedules in local time.
///
/// C++17 has no time zone database, and the C library's (`localtime_r` and
/// `mktime` with `TZ` set per call) is process-global and not thread-safe.
/// So Trellis reads the system's zoneinfo itself: `time_zone::from_tzif`
/// parses the bytes of one file (range-checked: a truncated or inconsistent
/// file is refused, never read past its end) and answers the two questions a
/// schedule asks: the UTC offset at an instant, and the instants a local wall
/// time names. Reading the file from disk is the caller's business (this layer
/// does no I/O): trellis/store/zoneinfo.hpp in the services layer.
///
/// Instants past the file's last transition follow its footer, a POSIX TZ
/// rule such as `CET-1CEST,M3.5.0,M10.5.0/3`; the month/week/day form of
/// such a rule is understood, and a footer in another form (`Jn`, `n`) is
/// refused rather than guessed at.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trellis/error.hpp"

namespace trellis {

/// Seconds since the Unix epoch, UTC.
using epoch_seconds = std::int64_t;

/// A local wall time: a civil date and a time of day, no zone.
struct local_time {
  int year = 1970;
  int month = 1;  ///< 1..12
  int day = 1;    ///< 1..31
  int hour = 0;   ///< 0..23
  int minute = 0; ///< 0..59
  int second = 0; ///< 0..59
  friend bool operator==(const local_time& a, const local_time& b) {
    return a.year == b.year && a.month == b.month && a.day == b.day && a.hour == b.hour &&
           a.minute == b.minute && a.second == b.second;
  }
};

/// Days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t days_from_civil(int year, int month, int day) noexcept;
/// The local wall time `seconds` after 1970-01-01T00:00:00 (no zone).
local_time civil_from_seconds(std::int64_t seconds) noexcept;
/// `t` as seconds after 1970-01-01T00:00:00 (no zone).
std::int64_t seconds_from_civil(const local_time& t) noexcept;
/// Day of the week of a civil date: 0 Sunday .. 6 Saturday.
int weekday(int year, int month, int day) noexcept;
/// Days in a month of a year (leap years counted).
int days_in_month(int year, int month) noexcept;

/// What a local wall time names in a zone.
struct local_instants {
  /// The earliest instant with that wall time; when the wall time falls in
  /// a gap (clocks moved forward over it), the first instant after the gap.
  epoch_seconds first = 0;
  /// True when the wall time does not exist (it is in a gap).
  bool in_gap = false;
  /// The second instant with that wall time when it is in an overlap
  /// (clocks moved back over it).
  std::optional<epoch_seconds> second;
};

/// A time zone: its transitions and the rule after them.
class time_zone {
 public:
  /// UTC, the zone of a schedule that names none.
  static time_zone utc();
  /// A zone with a fixed offset east of UTC, in seconds (tests, `Etc/` zones).
  static time_zone fixed(std::string name, std::int32_t offset_seconds);
  /// Parses the bytes of a TZif file (versions 1 to 4). `name` is what the
  /// zone is called (`Europe/Berlin`). Errors: `invalid_config`, naming what
  /// is wrong with the file.
  static expected<time_zone> from_tzif(std::string name, std::string_view bytes);

  /// The zone's name.
  const std::string& name() const noexcept { return name_; }
  /// The offset east of UTC in seconds at an instant.
  std::int32_t offset_at(epoch_seconds t) const noexcept;
  /// The wall time at an instant.
  local_time to_local(epoch_seconds t) const noexcept;
  /// The instants a wall time names (see `local_instants`).
  local_instants to_instants(const local_time& wall) const noexcept;

  /// One change of offset: from `at` on, the offset is `offset`.
  struct transition {
    epoch_seconds at = 0;
    std::int32_t offset = 0;
  };
  /// A yearly daylight-saving rule (a TZif footer's `Mm.w.d/time` form).
  struct yearly_rule {
    std::int32_t std_offset = 0;
    std::optional<std::int32_t> dst_offset;  ///< none: no daylight saving
    // Start and end of daylight saving: month 1..12, week 1..5 (5: the last),
    // weekday 0..6, seconds after local midnight (in the offset then in force).
    int start_month = 0, start_week = 0, start_weekday = 0;
    std::int32_t start_time = 7200;
    int end_month = 0, end_week = 0, end_weekday = 0;
    std::int32_t end_time = 7200;
  };

 private:
  std::string name_;
  std::vector<transition> transitions_;  // ascending `at`
  std::int32_t initial_offset_ = 0;       // before the first transition
  std::optional<yearly_rule> rule_;      // after the last transition
  // The transitions a rule gives in one year, ascending.
  std::vector<transition> rule_transitions(int year) const;
};

/// Parses a POSIX TZ rule (a TZif footer): `std offset [dst [offset]
/// [,Mm.w.d[/time],Mm.w.d[/time]]]`. Exposed for tests.
expected<time_zone::yearly_rule> parse_posix_tz(std::string_view rule);

}  // namespace trellis
