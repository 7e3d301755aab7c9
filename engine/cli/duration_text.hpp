#pragma once

/// @file
/// Durations as the retention flags, variables and config keys take them
/// (docs/cli.md, "Durations"): a whole number with a unit, `ms`, `s`, `m`,
/// `h` or `d` (`1d`, `30m`, `3600s`, `500ms`), or `0`, which keeps forever.

#include "trellis/defaults.hpp"
#include "trellis/error.hpp"

#include <chrono>
#include <string>

namespace trellis::cli {

/// Parses `text`; `invalid_config` for anything else (no unit, a sign, a
/// fraction, spaces) and for a duration longer than `max`. The message
/// names the text, not where it came from: callers add that.
expected<std::chrono::milliseconds> parse_duration(const std::string& text,
                                                   std::chrono::milliseconds max = defaults::max_expires);

/// `d` written with the largest unit that divides it exactly: "1d", "90m",
/// "1500ms", "0".
std::string duration_text(std::chrono::milliseconds d);

}  // namespace trellis::cli
