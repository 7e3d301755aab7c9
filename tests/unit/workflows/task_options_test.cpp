// Task options Celery users rely on, in C++ and in the workflow file: retry
// filters by error type (Celery's autoretry_for / dont_autoretry_for) and an
// absolute eta in RFC 3339.

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/retry_policy.hpp"
#include "trellis/timestamp.hpp"
#include "trellis/value.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using trellis::retry_policy;
using trellis::signature;
using trellis::value;

namespace {

value parse_json(const std::string& text) {
  auto v = trellis::value_from_json(text);
  REQUIRE(v.has_value());
  return *v;
}

/// The error message of parsing `text` as a workflow file, which must fail
/// with `invalid_workflow`.
std::string rejection(const std::string& text) {
  auto c = trellis::canvas_from_value(parse_json(text));
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code() == trellis::errc::invalid_workflow);
  return c.error().message();
}

/// The canvas of `text`, which must parse.
trellis::canvas parsed(const std::string& text) {
  auto c = trellis::canvas_from_value(parse_json(text));
  INFO(text << (c ? std::string{} : " -> " + c.error().message()));
  REQUIRE(c.has_value());
  return *c;
}

}  // namespace

// -- retry filters -------------------------------------------------------------

TEST_CASE("by default every error type is retried; retry_on keeps only its types, dont_retry_on drops its own",
          "[unit][retry][retry-filters]") {
  retry_policy all;
  CHECK(all.retries_type("connection_error"));
  CHECK(all.retries_type("std::runtime_error"));
  CHECK(all.retries_type("time_limit_exceeded"));

  auto only = retry_policy::fixed(3, 10ms).with_retry_on({"connection_error", "timeout"});
  CHECK(only.retries_type("connection_error"));
  CHECK(only.retries_type("timeout"));
  CHECK_FALSE(only.retries_type("std::runtime_error"));
  CHECK_FALSE(only.retries_type("time_limit_exceeded"));

  auto except = retry_policy::fixed(3, 10ms).with_dont_retry_on({"fatal"});
  CHECK(except.retries_type("connection_error"));
  CHECK_FALSE(except.retries_type("fatal"));

  auto both = only.with_dont_retry_on({"timeout"});
  CHECK(both.retries_type("connection_error"));
  CHECK_FALSE(both.retries_type("timeout"));
  CHECK_FALSE(both == only);
}

TEST_CASE("a workflow file's retry filters parse into the policy and print back the same",
          "[unit][canvas][retry-filters]") {
  auto text = R"({"task":"a","args":[],"kwargs":{},"options":{"retry":{"max_retries":3,"countdown_ms":1000,)"
              R"("backoff":"exponential","backoff_max_ms":60000,"jitter":true,)"
              R"("retry_on":["connection_error","timeout"],"dont_retry_on":["fatal"]}}})";
  auto c = parsed(text);
  const auto& policy = c.sig().options().retry;
  REQUIRE(policy);
  CHECK(policy->max_retries == 3);
  CHECK(policy->retry_on == std::vector<std::string>{"connection_error", "timeout"});
  CHECK(policy->dont_retry_on == std::vector<std::string>{"fatal"});
  CHECK(to_json(c) == to_json(parse_json(text)));

  SECTION("left out, they are empty and not printed") {
    auto plain = parsed(R"({"task":"a","options":{"retry":{"max_retries":3}}})");
    CHECK(plain.sig().options().retry->retry_on.empty());
    CHECK(to_json(plain).find("retry_on") == std::string::npos);
  }
  SECTION("the C++ policy prints the same file") {
    auto built = signature("a").retry(retry_policy::exponential(3, 1000ms, 60000ms)
                                          .with_retry_on({"connection_error", "timeout"})
                                          .with_dont_retry_on({"fatal"}));
    CHECK(to_json(trellis::canvas(built)) == to_json(c));
  }
}

TEST_CASE("retry filters that are not lists of error types are refused with their place",
          "[unit][canvas][retry-filters]") {
  CHECK(rejection(R"({"task":"a","options":{"retry":{"retry_on":"connection_error"}}})") ==
        R"($.options.retry.retry_on: must be an array, got "connection_error")");
  CHECK(rejection(R"({"task":"a","options":{"retry":{"dont_retry_on":["fatal",5]}}})") ==
        "$.options.retry.dont_retry_on[1]: must be a non-empty string, got 5");
  CHECK(rejection(R"({"task":"a","options":{"retry":{"retry_on":[""]}}})") ==
        R"($.options.retry.retry_on[0]: must be a non-empty string, got "")");
  CHECK(rejection(R"({"task":"a","options":{"retry":{"retry_on":["x","y"],"dont_retry_on":["y"]}}})") ==
        "$.options.retry: error type 'y' is in both retry_on and dont_retry_on; list it in one");
  CHECK(rejection(R"({"task":"a","options":{"retry":{"retry_for":["x"]}}})") ==
        "$.options.retry: unknown key 'retry_for'");
  CHECK_THROWS_WITH(signature("a").retry(retry_policy::fixed(1, 1ms).with_retry_on({"y"}).with_dont_retry_on({"y"})),
                    "signature 'a': error type 'y' is in both retry_on and dont_retry_on; list it in one");
  CHECK_THROWS_AS(signature("a").retry(retry_policy::fixed(1, 1ms).with_retry_on({""})), trellis::usage_error);
}

// -- eta -----------------------------------------------------------------------

TEST_CASE("an RFC 3339 date-time with an offset reads as epoch milliseconds", "[unit][eta]") {
  using trellis::parse_rfc3339_ms;
  CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_ms("2026-12-06T09:00:00Z") == 1796547600000);
  CHECK(parse_rfc3339_ms("2026-12-06T10:00:00+01:00") == 1796547600000);
  CHECK(parse_rfc3339_ms("2026-12-06T03:30:00-05:30") == 1796547600000);
  CHECK(parse_rfc3339_ms("2026-12-06t09:00:00z") == 1796547600000);
  CHECK(parse_rfc3339_ms("2026-12-06T09:00:00.25Z") == 1796547600250);
  CHECK(parse_rfc3339_ms("2026-12-06T09:00:00.123456789Z") == 1796547600123);
  CHECK(parse_rfc3339_ms("2024-02-29T00:00:00Z") == 1709164800000);
  CHECK(parse_rfc3339_ms("1969-12-31T23:59:59Z") == -1000);
  CHECK(parse_rfc3339_ms("2026-12-31T23:59:60Z") == parse_rfc3339_ms("2027-01-01T00:00:00Z"));
  for (const char* bad :
       {"", "2026-12-06", "2026-12-06T09:00:00", "2026-12-06 09:00:00Z", "2026-12-06T09:00Z", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T09:60:00Z",
        "2026-12-06T09:00:61Z", "2026-12-06T09:00:00.Z", "2026-12-06T09:00:00+0100", "2026-12-06T09:00:00+24:00",
        "2026-12-06T09:00:00Z ", "tomorrow", "+2026-12-06T09:00:00Z", "2026-1-06T09:00:00Z"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(parse_rfc3339_ms(bad).has_value());
  }
}

TEST_CASE("epoch milliseconds print as RFC 3339 in UTC and read back exactly", "[unit][eta]") {
  using trellis::format_rfc3339_ms;
  CHECK(format_rfc3339_ms(0) == "1970-01-01T00:00:00Z");
  CHECK(format_rfc3339_ms(1796547600000) == "2026-12-06T09:00:00Z");
  CHECK(format_rfc3339_ms(1796547600250) == "2026-12-06T09:00:00.250Z");
  CHECK(format_rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
  for (std::int64_t ms : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{951782400123}, std::int64_t{253402300799999},
                          std::int64_t{-62167219200000}}) {
    INFO(ms);
    CHECK(trellis::parse_rfc3339_ms(format_rfc3339_ms(ms)) == ms);
  }
}

TEST_CASE("a workflow file's eta is kept to the millisecond and printed in UTC", "[unit][canvas][eta]") {
  auto c = parsed(R"({"task":"a","options":{"eta":"2026-12-06T10:00:00+01:00"}})");
  REQUIRE(c.sig().options().eta);
  CHECK(c.sig().options().eta->time_since_epoch().count() == 1796547600000);
  CHECK(to_json(c) == R"({"args":[],"kwargs":{},"options":{"eta":"2026-12-06T09:00:00Z"},"task":"a"})");
  CHECK(to_json(parsed(to_json(c))) == to_json(c));

  auto built = signature("a").eta(std::chrono::system_clock::time_point{1796547600250ms});
  CHECK(to_json(trellis::canvas(built)) ==
        R"({"args":[],"kwargs":{},"options":{"eta":"2026-12-06T09:00:00.250Z"},"task":"a"})");
}

TEST_CASE("a malformed eta, or an eta with a countdown, is refused naming it", "[unit][canvas][eta]") {
  CHECK(rejection(R"({"chain":[{"task":"a"},{"task":"b","options":{"eta":"2026-12-06T09:00:00"}}]})") ==
        R"($.chain[1].options.eta: must be an RFC 3339 date-time with an offset, like "2026-12-06T10:00:00+01:00" or )"
        R"("2026-12-06T09:00:00Z", got "2026-12-06T09:00:00")");
  CHECK(rejection(R"({"task":"a","options":{"eta":1796547600000}})") ==
        R"($.options.eta: must be an RFC 3339 date-time with an offset, like "2026-12-06T10:00:00+01:00" or )"
        R"("2026-12-06T09:00:00Z", got 1796547600000)");
  CHECK(rejection(R"({"task":"a","options":{"eta":"2026-12-06T09:00:00Z","countdown_ms":10}})") ==
        "$.options: eta and countdown_ms exclude each other; give one");
  auto when = std::chrono::system_clock::time_point{1796547600000ms};
  CHECK_THROWS_WITH(signature("a").countdown(10ms).eta(when),
                    "signature 'a': eta and countdown exclude each other; give one");
  CHECK_THROWS_WITH(signature("a").eta(when).countdown(10ms),
                    "signature 'a': countdown and eta exclude each other; give one");
}
