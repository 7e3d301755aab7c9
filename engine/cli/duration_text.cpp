#include "cli/duration_text.hpp"

#include <cstdint>
#include <utility>

namespace trellis::cli {

namespace {

/// Units, longest first (`duration_text` picks the first that divides).
constexpr std::pair<const char*, std::int64_t> units[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1},
};

/// Twelve digits: more than ten years in milliseconds, and far from
/// overflowing an int64 once multiplied by a day.
constexpr std::size_t max_digits = 12;

}  // namespace

expected<std::chrono::milliseconds> parse_duration(const std::string& text, std::chrono::milliseconds max) {
  auto refuse = [&](const std::string& why) {
    return error{errc::invalid_config, "'" + text.substr(0, 40) + "' is not a duration: " + why};
  };
  if (text == "0") {
    return std::chrono::milliseconds{0};
  }
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  if (digits == 0 || digits > max_digits) {
    return refuse("use a whole number of at most 12 digits and a unit, ms, s, m, h or d (1d, 30m, 3600s), or 0");
  }
  const std::string unit = text.substr(digits);
  for (const auto& [name, ms] : units) {
    if (unit == name) {
      std::int64_t n = std::stoll(text.substr(0, digits));
      // n < 10^12 and ms <= 8.64e7: a day count past the maximum is caught
      // before the product could overflow.
      if (n > max.count() / ms) {
        return refuse("longer than the longest accepted, " + duration_text(max));
      }
      return std::chrono::milliseconds{n * ms};
    }
  }
  return refuse(unit.empty() ? "it needs a unit, ms, s, m, h or d (only 0 goes without)"
                             : "unknown unit '" + unit.substr(0, 8) + "'; use ms, s, m, h or d");
}

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() == 0) {
    return "0";
  }
  for (const auto& [name, ms] : units) {
    if (d.count() % ms == 0) {
      return std::to_string(d.count() / ms) + name;
    }
  }
  return std::to_string(d.count()) + "ms";
}

}  // namespace trellis::cli
