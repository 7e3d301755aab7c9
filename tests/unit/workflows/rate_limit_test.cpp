// Rate limits: the "N/s", "N/m", "N/h" spelling, read strictly in C++ and in
// the workflow file (the gate that spaces the starts: start_gate_test.cpp).

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/rate_limit.hpp"
#include "trellis/task.hpp"
#include "trellis/value.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using trellis::parse_rate_limit;
using trellis::rate_limit_spec;

namespace {

std::string rejection(const std::string& text) {
  auto v = trellis::value_from_json(text);
  REQUIRE(v.has_value());
  auto c = trellis::canvas_from_value(*v);
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code() == trellis::errc::invalid_workflow);
  return c.error().message();
}

}  // namespace

TEST_CASE("a rate limit reads as N per second, minute or hour, and its interval never allows more",
          "[unit][rate-limit]") {
  auto r = parse_rate_limit("20/s");
  REQUIRE(r);
  CHECK(r->count == 20);
  CHECK(r->unit == 's');
  CHECK(r->interval_us() == 50'000);
  CHECK(r->to_string() == "20/s");
  CHECK(parse_rate_limit("1/h")->interval_us() == 3'600'000'000LL);
  CHECK(parse_rate_limit("100/m")->interval_us() == 600'000);
  // 60 s / 7 is not a whole number of microseconds: rounded up.
  CHECK(parse_rate_limit("7/m")->interval_us() == 8'571'429);
  CHECK(parse_rate_limit("1000000/s")->interval_us() == 1);
  CHECK(parse_rate_limit("1000000/h")->interval_us() == 3'600);
  CHECK(*parse_rate_limit("3600/h") == rate_limit_spec{3600, 'h'});
}

TEST_CASE("anything but N/s, N/m or N/h with N from 1 to 1000000 is not a rate limit", "[unit][rate-limit]") {
  for (const char* bad : {"0/s", "20/x", "1.5/s", "20", "/s", "20/", "20/sec", " 20/s", "20/s ", "020/s", "-1/s",
                          "+5/s", "1000001/s", "99999999999999999999/s", "20/S", "20//s", "2 0/s", "", "/"}) {
    INFO(bad);
    CHECK_FALSE(parse_rate_limit(bad));
  }
}

TEST_CASE("rate_limit on a signature and as a task default; a bad one is a usage_error",
          "[unit][rate-limit]") {
  auto sig = trellis::signature("noop").rate_limit("20/s");
  REQUIRE(sig.options().rate_limit);
  CHECK(sig.options().rate_limit->interval_us() == 50'000);
  CHECK(trellis::to_json(trellis::to_value(sig)) ==
        R"({"args":[],"kwargs":{},"options":{"rate_limit":"20/s"},"task":"noop"})");
  CHECK_THROWS_AS(trellis::signature("noop").rate_limit("0/s"), trellis::usage_error);
  CHECK_THROWS_WITH(trellis::signature("noop").rate_limit("20/x"), Catch::Contains("rate_limit must be a rate like"));

  trellis::task_registry tasks;
  auto noop = tasks.add("noop", [](trellis::task_context&) { return trellis::value{}; });
  noop.rate_limit("3/m");
  REQUIRE(tasks.find("noop")->defaults.rate_limit);
  CHECK(tasks.find("noop")->defaults.rate_limit->to_string() == "3/m");
  CHECK_THROWS_AS(noop.rate_limit("1.5/s"), trellis::usage_error);
}

TEST_CASE("a workflow file's rate_limit parses, prints back the same, and is refused with its place",
          "[unit][rate-limit][canvas]") {
  auto text = R"({"args":[],"kwargs":{},"options":{"rate_limit":"20/s"},"task":"noop"})";
  auto v = trellis::value_from_json(text);
  REQUIRE(v);
  auto c = trellis::canvas_from_value(*v);
  REQUIRE(c);
  REQUIRE(c->is_task());
  CHECK(trellis::to_json(trellis::to_value(*c)) == text);
  CHECK(c->sig().options().rate_limit->to_string() == "20/s");

  CHECK(rejection(R"({"task":"noop","options":{"rate_limit":"0/s"}})") ==
        R"($.options.rate_limit: must be a rate like "20/s", "100/m" or "3600/h" (an integer from 1 to 1000000, )"
        R"(then /s, /m or /h), got "0/s")");
  CHECK(rejection(R"({"chain":[{"task":"a"},{"task":"noop","options":{"rate_limit":20}}]})") ==
        R"($.chain[1].options.rate_limit: must be a rate like "20/s", "100/m" or "3600/h" (an integer from 1 )"
        R"(to 1000000, then /s, /m or /h), got 20)");
  CHECK_THAT(rejection(R"({"task":"noop","options":{"rate_limit":"1.5/s"}})"), Catch::Contains("got \"1.5/s\""));
  CHECK_THAT(rejection(R"({"task":"noop","options":{"rate_limit":"20/x"}})"), Catch::Contains("got \"20/x\""));
}
