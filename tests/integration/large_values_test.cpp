// Workflows and values far larger than one message, and the size limits that
// bound them: embedded here (the engine's own API); the same over a default
// nats-server, where they travel in pieces, in cluster_large_values_test.cpp.

#include "support/engine_run.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using trellis::canvas;
using trellis::errc;
using trellis::signature;
using trellis::value;
using trellis::test::max_test_wait;
using trellis::test::run;
using trellis::test::temp_dir;

/// The demo tasks (`blob(bytes)` and `measure(values)` among them), plus
/// `size(s)`, the length of one string.
trellis::task_registry tasks() {
  trellis::task_registry out;
  trellis::demo::register_demo_tasks(out);
  out.add("size", [](trellis::task_context&, std::string s) { return static_cast<std::int64_t>(s.size()); });
  return out;
}

trellis::engine_config config(const temp_dir& dir) {
  trellis::engine_config cfg;
  cfg.store_path = dir.file("store.db");
  return cfg;
}

/// Submits `flow`, which must fail with `payload_too_large`, and returns
/// its error map.
value::map failure_of(trellis::engine& eng, const canvas& flow) {
  auto h = eng.submit(flow);
  REQUIRE(h);
  REQUIRE_FALSE(h->wait_for(max_test_wait));
  auto details = h->error_details();
  REQUIRE(details.is_map());
  CHECK(details.as_map().at("type") == value("payload_too_large"));
  return details.as_map();
}

}  // namespace

TEST_CASE("Embedded, a group of 2,000 tasks with 10 KiB arguments each runs (20 MB in one submission)",
          "[integration][engine][large]") {
  temp_dir dir;
  trellis::engine eng{config(dir), tasks()};
  constexpr int members = 2000;
  constexpr std::size_t argument = 10 * 1024;
  std::vector<canvas> header;
  for (int i = 0; i < members; ++i) {
    header.push_back(signature("size", {std::string(argument, static_cast<char>('a' + i % 26))}));
  }
  auto total = run(eng, trellis::chord(std::move(header), signature("xsum")));
  CHECK(total == value(static_cast<std::int64_t>(members * argument)));
}

TEST_CASE("Embedded, a chord of 1,000 whose header results add up to 100 MB runs its body once with all of them",
          "[integration][engine][large]") {
  temp_dir dir;
  trellis::engine eng{config(dir), tasks()};
  constexpr int members = 1000;
  constexpr std::int64_t result = 100'000;
  std::vector<canvas> header;
  for (int i = 0; i < members; ++i) {
    header.push_back(signature("blob", {result}));
  }
  auto total = run(eng, trellis::chord(std::move(header), signature("measure")));
  CHECK(total == value(members * result));
}

TEST_CASE("Past a configured size limit the error is payload_too_large and names the limit",
          "[integration][engine][large]") {
  temp_dir dir;
  auto cfg = config(dir);
  cfg.limits.max_submission_bytes = 64 * 1024;
  cfg.limits.max_argument_bytes = 16 * 1024;
  cfg.limits.max_result_bytes = 16 * 1024;
  trellis::engine eng{cfg, tasks()};

  SECTION("a submission, at submit time: nothing is stored or run") {
    std::vector<canvas> members;
    for (int i = 0; i < 10; ++i) {
      members.push_back(signature("size", {std::string(10 * 1024, 's')}));
    }
    auto h = eng.submit(trellis::group(std::move(members)));
    REQUIRE_FALSE(h);
    CHECK(h.error().code() == errc::payload_too_large);
    CHECK_THAT(h.error().message(), Catch::Contains("max_submission_bytes (65536)"));
  }
  SECTION("a step's own arguments, at submit time") {
    auto h = eng.submit(trellis::chain(signature("size", {std::string(20 * 1024, 's')}), signature("identity")));
    REQUIRE_FALSE(h);
    CHECK(h.error().code() == errc::payload_too_large);
    CHECK_THAT(h.error().message(), Catch::Contains("max_argument_bytes (16384)"));
    CHECK_THAT(h.error().message(), Catch::Contains("'size'"));
  }
  SECTION("a result, when the step returns it: the step fails on its first attempt, without retry") {
    auto err = failure_of(
        eng, signature("blob", {20 * 1024}).retry(trellis::retry_policy::fixed(3, std::chrono::milliseconds{10})));
    CHECK_THAT(err.at("message").as_string(), Catch::Contains("max_result_bytes"));
    auto letters = eng.dead_letters();
    REQUIRE(letters);
    REQUIRE(letters->size() == 1);
    CHECK(letters->front().as_map().at("attempts") == value(1));
  }
  SECTION("an input from previous steps, when the step's turn comes") {
    std::vector<canvas> header;
    for (int i = 0; i < 3; ++i) {
      header.push_back(signature("blob", {8 * 1024}));
    }
    auto err = failure_of(eng, trellis::chord(std::move(header), signature("measure")));
    CHECK(err.at("task") == value("measure"));
    CHECK_THAT(err.at("message").as_string(), Catch::Contains("max_argument_bytes"));
  }
}

TEST_CASE("A size limit of 0 or past what the store can keep is refused when the engine starts",
          "[integration][engine]") {
  temp_dir dir;
  auto cfg = config(dir);
  cfg.limits.max_result_bytes = 0;
  CHECK_THROWS_WITH(trellis::engine(cfg, tasks()), Catch::Contains("limits.max_result_bytes must be from 1 to"));
  cfg.limits.max_result_bytes = trellis::defaults::max_configurable_bytes + 1;
  CHECK_THROWS_WITH(trellis::engine(cfg, tasks()), Catch::Contains("limits.max_result_bytes must be from 1 to"));
}
