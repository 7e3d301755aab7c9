#include "trellis/retry_policy.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <limits>

using namespace std::chrono_literals;
using trellis::backoff_kind;
using trellis::retry_policy;

TEST_CASE("the default policy does not retry and backs off exponentially from 1 s to 60 s with jitter",
          "[unit][retry]") {
  retry_policy p;
  CHECK(p.max_retries == 0);
  CHECK(p.countdown == 1000ms);
  CHECK(p.backoff == backoff_kind::exponential);
  CHECK(p.backoff_max == 60000ms);
  CHECK(p.jitter);
  CHECK(retry_policy::none() == p);
}

TEST_CASE("a fixed policy waits its countdown before every retry", "[unit][retry]") {
  auto p = retry_policy::fixed(5, 250ms);
  CHECK(p.max_retries == 5);
  CHECK_FALSE(p.jitter);
  for (int n : {1, 2, 3, 10, 1000}) {
    INFO("retry " << n);
    CHECK(p.delay_before(n, 0.5) == 250ms);
  }
}

TEST_CASE("an exponential policy doubles the delay with each retry", "[unit][retry]") {
  auto p = retry_policy::exponential(10, 100ms, 1'000'000ms);
  p.jitter = false;
  CHECK(p.delay_before(1, 0.0) == 100ms);
  CHECK(p.delay_before(2, 0.0) == 200ms);
  CHECK(p.delay_before(3, 0.0) == 400ms);
  CHECK(p.delay_before(4, 0.0) == 800ms);
  CHECK(p.delay_before(11, 0.0) == 102400ms);
}

TEST_CASE("an exponential delay never exceeds backoff_max", "[unit][retry]") {
  auto p = retry_policy::exponential(10, 1000ms, 5000ms);
  p.jitter = false;
  CHECK(p.delay_before(1, 0.0) == 1000ms);
  CHECK(p.delay_before(2, 0.0) == 2000ms);
  CHECK(p.delay_before(3, 0.0) == 4000ms);
  CHECK(p.delay_before(4, 0.0) == 5000ms);
  CHECK(p.delay_before(30, 0.0) == 5000ms);
  SECTION("a cap below the countdown wins over the countdown") {
    p.backoff_max = 300ms;
    CHECK(p.delay_before(1, 0.0) == 300ms);
  }
}

TEST_CASE("full jitter scales the computed delay by the unit draw", "[unit][retry]") {
  auto p = retry_policy::exponential(5, 1000ms, 60000ms);
  REQUIRE(p.jitter);
  SECTION("exponential") {
    CHECK(p.delay_before(3, 0.0) == 0ms);
    CHECK(p.delay_before(3, 0.5) == 2000ms);
    CHECK(p.delay_before(3, 0.999) == 3996ms);
  }
  SECTION("fixed") {
    auto f = retry_policy::fixed(5, 1000ms);
    f.jitter = true;
    CHECK(f.delay_before(7, 0.0) == 0ms);
    CHECK(f.delay_before(7, 0.5) == 500ms);
    CHECK(f.delay_before(7, 0.999) == 999ms);
  }
  SECTION("a draw outside [0, 1) is clamped instead of making the delay negative or larger") {
    CHECK(p.delay_before(1, -3.0) == 0ms);
    CHECK(p.delay_before(1, 7.0) == 1000ms);
  }
}

TEST_CASE("huge retry numbers and delays do not overflow", "[unit][retry]") {
  constexpr int huge = std::numeric_limits<int>::max();
  auto p = retry_policy::exponential(huge, 1000ms, 60000ms);
  p.jitter = false;
  CHECK(p.delay_before(huge, 0.0) == 60000ms);
  CHECK(p.delay_before(63, 0.0) == 60000ms);
  CHECK(p.delay_before(64, 0.0) == 60000ms);

  SECTION("an uncapped exponential delay saturates at the largest duration") {
    p.backoff_max = std::chrono::milliseconds::max();
    auto d = p.delay_before(huge, 0.0);
    CHECK(d == std::chrono::milliseconds::max());
    p.jitter = true;
    CHECK(p.delay_before(huge, 0.5) > 0ms);
    CHECK(p.delay_before(huge, 0.5) < d);
  }
  SECTION("the largest fixed countdown stays positive") {
    auto f = retry_policy::fixed(1, std::chrono::milliseconds::max());
    CHECK(f.delay_before(1, 0.0) == std::chrono::milliseconds::max());
  }
  SECTION("retry numbers below 1 are treated as the first retry") {
    CHECK(p.delay_before(0, 0.0) == 1000ms);
    CHECK(p.delay_before(-5, 0.0) == 1000ms);
  }
}

TEST_CASE("negative durations in a policy produce no negative delay", "[unit][retry]") {
  retry_policy p;
  p.jitter = false;
  p.countdown = -5ms;
  CHECK(p.delay_before(1, 0.0) == 0ms);
  p.countdown = 100ms;
  p.backoff_max = -1ms;
  CHECK(p.delay_before(2, 0.0) == 0ms);
}
