// Task options Celery users rely on, in C++ and in the workflow file: retry
// filters by error type (Celery's autoretry_for / dont_autoretry_for).

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/retry_policy.hpp"
#include "trellis/value.hpp"

#include <catch2/catch.hpp>

#include <chrono>
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
