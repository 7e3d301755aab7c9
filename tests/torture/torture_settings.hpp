#pragma once

/// @file
/// How long and with which seed the torture tests run. CI runs them with the
/// defaults (a bounded run of seconds); a soak sets the environment:
///
///     TRELLIS_TORTURE_SECONDS=1800 TRELLIS_TORTURE_SEED=42 build/bin/trellis_torture_tests
///
/// Every run prints its seed, so a failure can be run again exactly (the
/// moments of faults depend on timing too, so "exactly" means the same
/// choices, not the same interleaving).

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace trellis::test {

/// A whole number from the environment variable `name` in [low, high], or
/// `fallback` when it is unset; anything else fails the test.
inline std::uint64_t torture_setting(const char* name, std::uint64_t fallback, std::uint64_t low, std::uint64_t high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    return fallback;
  }
  std::string s{text};
  INFO(name << "='" << s << "' must be a whole number from " << low << " to " << high);
  REQUIRE(s.size() <= 19);
  REQUIRE(s.find_first_not_of("0123456789") == std::string::npos);
  auto n = std::stoull(s);
  REQUIRE(n >= low);
  REQUIRE(n <= high);
  return n;
}

/// How long each torture test injects faults or messages: TRELLIS_TORTURE_SECONDS
/// (1 to 86,400), 15 by default.
inline std::chrono::seconds torture_duration() {
  return std::chrono::seconds{torture_setting("TRELLIS_TORTURE_SECONDS", 15, 1, 86'400)};
}

/// TRELLIS_TORTURE_SEED, or a fresh one.
inline std::uint64_t torture_seed() {
  return torture_setting("TRELLIS_TORTURE_SEED", std::random_device{}(), 0, UINT64_MAX / 2);
}

}  // namespace trellis::test
