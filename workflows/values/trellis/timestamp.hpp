#pragma once

/// @file
/// RFC 3339 timestamps, as a workflow file writes an `eta`:
/// "2026-12-06T10:00:00+01:00", "2026-12-06T09:00:00.250Z".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trellis {

/// Milliseconds since the Unix epoch of an RFC 3339 `date-time`
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`; `T` and `Z` may be
/// lower case), or nothing when `text` is not one: a missing offset, a
/// field out of range (month 13, February 30, hour 24), anything else
/// around it. Digits of the fraction beyond milliseconds are dropped; a
/// leap second (`:60`) counts as the first second of the next minute.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

/// `epoch_ms` as RFC 3339 in UTC: "2026-12-06T09:00:00Z", with ".mmm" when
/// the milliseconds are not 0. `parse_rfc3339_ms` reads it back exactly, for
/// the years 0000 to 9999.
std::string format_rfc3339_ms(std::int64_t epoch_ms);

}  // namespace trellis
