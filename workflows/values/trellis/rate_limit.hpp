#pragma once

/// @file
/// A task's rate limit, as Celery writes one: "N/s", "N/m" or "N/h", at most
/// N starts of the task per second, minute or hour, spaced evenly (one start
/// every 1/N of the unit). Read strictly, so that the workflow file, the C++
/// setters and the task message agree on one spelling.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trellis {

/// At most `count` starts per `unit`.
struct rate_limit_spec {
  /// The largest N of "N/s" (one start every microsecond).
  static constexpr std::int64_t max_count = 1'000'000;

  /// 1 to `max_count`.
  std::int64_t count = 1;
  /// 's', 'm' or 'h'.
  char unit = 's';

  /// The time between two starts in microseconds, rounded up so that the
  /// spacing never allows more than `count` starts per unit: "20/s" is
  /// 50,000, "7/m" 8,571,429, "1000000/s" 1. Always at least 1.
  std::int64_t interval_us() const noexcept;

  /// The canonical spelling, "20/s": what `parse` reads back.
  std::string to_string() const;

  friend bool operator==(const rate_limit_spec& a, const rate_limit_spec& b) noexcept {
    return a.count == b.count && a.unit == b.unit;
  }
  friend bool operator!=(const rate_limit_spec& a, const rate_limit_spec& b) noexcept { return !(a == b); }
};

/// Reads "N/s", "N/m" or "N/h": N a decimal integer from 1 to 1,000,000
/// without sign, leading zero or blanks, and one of the three units. Nothing
/// for anything else ("0/s", "20/x", "1.5/s", "20", "20/sec", " 20/s").
std::optional<rate_limit_spec> parse_rate_limit(std::string_view text);

/// What the workflow file and the setters say a rate limit must be.
inline constexpr const char* rate_limit_expectation =
    "a rate like \"20/s\", \"100/m\" or \"3600/h\" (an integer from 1 to 1000000, then /s, /m or /h)";

}  // namespace trellis
