#pragma once

/// @file
/// Reads a time zone from the system's zoneinfo (Debian's tzdata: TZif
/// files under /usr/share/zoneinfo), for cron schedules in local time.
///
/// The parsing is `trellis::time_zone::from_tzif` (workflow logic, pure);
/// this is the file access around it: the zone name is checked before it
/// becomes a path (no `..`, no leading `/`, a bounded length and alphabet),
/// and the file is read whole, at most 1 MiB. `TZDIR`, when set, names
/// another zoneinfo directory, as it does for the C library.

#include <string>
#include <string_view>

#include "trellis/error.hpp"
#include "trellis/time_zone.hpp"

namespace trellis::detail {

/// The zone named `name` (`Europe/Berlin`, `UTC`). `UTC` and `Etc/UTC` need
/// no file. Errors: `invalid_config`, naming the zone and why (unknown
/// name, unreadable or malformed file).
expected<time_zone> load_time_zone(std::string_view name);

}  // namespace trellis::detail
