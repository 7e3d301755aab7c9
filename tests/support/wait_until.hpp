#pragma once

/// @file
/// Waiting honestly in tests: poll a condition with a short backoff until it
/// holds or a bounded deadline passes. Never a fixed sleep as synchronization.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

namespace trellis::test {

/// The longest any test waits for anything. A condition that has not come
/// true by then is a failure, not a slow machine.
inline constexpr std::chrono::milliseconds max_test_wait{60'000};

/// Polls `predicate` (a callable returning bool) until it returns true or
/// `max` (capped at `max_test_wait`) has passed. The first poll is immediate;
/// the pause between polls grows from 1 ms to 20 ms, so a condition that
/// comes true quickly is seen quickly and a slow one does not burn a core.
///
/// On timeout it records a failure (`FAIL_CHECK`) saying what it waited for
/// and returns false, so the caller can stop with `REQUIRE(wait_until(...))`.
template <class Predicate>
bool wait_until(Predicate&& predicate, std::chrono::milliseconds max, const char* what) {
  using clock = std::chrono::steady_clock;
  constexpr auto first_pause = std::chrono::milliseconds{1};
  constexpr auto max_pause = std::chrono::milliseconds{20};
  auto limit = std::min(max, max_test_wait);
  auto deadline = clock::now() + limit;
  auto pause = first_pause;
  for (;;) {
    if (predicate()) {
      return true;
    }
    if (clock::now() >= deadline) {
      FAIL_CHECK("timed out after " << limit.count() << " ms waiting for " << what);
      return false;
    }
    // The pause paces the polling; it never stands in for the condition.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, max_pause);
  }
}

}  // namespace trellis::test
