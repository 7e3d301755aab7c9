#pragma once

/// @file
/// What the torture tests share: how long and with which seed they run, and
/// how they pick and count. CI runs them with the defaults (a bounded run of
/// seconds); a soak sets the environment:
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
#include <filesystem>
#include <random>
#include <string>
#include <vector>

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

/// The torture tests' random source, seeded with `torture_seed()`.
using torture_rng = std::mt19937_64;

/// A uniform pick from [low, high].
inline std::size_t between(torture_rng& rng, std::size_t low, std::size_t high) {
  return std::uniform_int_distribution<std::size_t>{low, high}(rng);
}

/// How many of the touch marks `marks` exist: the steps that ran so far.
inline std::size_t marks_made(const std::vector<std::string>& marks) {
  std::size_t n = 0;
  for (const auto& m : marks) {
    n += std::filesystem::exists(m) ? 1 : 0;
  }
  return n;
}

}  // namespace trellis::test
