#pragma once

/// @file
/// Internal: one JSON string, as `to_json` (value.hpp) writes every string
/// and the process log (log.hpp) its JSON lines: quotes, backslashes and
/// control characters escaped, and bytes that are not valid UTF-8 (stray
/// continuation bytes, overlong forms, surrogates) written as U+FFFD, so
/// that the output always parses.

#include <string>
#include <string_view>

namespace trellis::detail {

/// Appends `s` to `out` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view s);

}  // namespace trellis::detail
