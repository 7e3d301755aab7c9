// The embedded engine through its public C++ API, with the demo tasks: canvas
// results, submission keys, idempotency keys, retries and attempt numbers,
// timeouts, and workflows that outlive the engine that started them.

#include "support/engine_run.hpp"
#include "support/files.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using trellis::canvas;
using trellis::errc;
using trellis::signature;
using trellis::value;
using trellis::test::max_test_wait;
using trellis::test::run;
using trellis::test::temp_dir;

trellis::task_registry demo_tasks() {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  return tasks;
}

signature task(std::string name, value::array args = {}) { return signature(std::move(name), std::move(args)); }

}  // namespace

TEST_CASE("a chain passes each result on, a group collects results in call order, a chord sums its header",
          "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};

  SECTION("chain") {
    CHECK(to_json(run(eng, trellis::chain(task("add", {2, 2}), task("add", {4}), task("mul", {10})))) == "80");
  }
  SECTION("group") {
    CHECK(to_json(run(eng, trellis::group(task("add", {1, 1}), task("mul", {3, 3}), task("identity", {"x"})))) ==
          R"([2,9,"x"])");
  }
  SECTION("chord") {
    std::vector<canvas> header;
    for (int i = 0; i < 10; ++i) {
      header.emplace_back(task("add", {i, i}));
    }
    CHECK(to_json(run(eng, trellis::chord(header, task("xsum")))) == "90");
  }
  SECTION("a chain through a group into a chord body") {
    auto flow = trellis::chain(task("add", {1, 1}), trellis::group(task("add", {10}), task("mul", {10})), task("xsum"));
    CHECK(to_json(run(eng, flow)) == "32");  // [2 + 10, 2 * 10] summed
  }
}

TEST_CASE("a second submission with the same key returns the first workflow and runs nothing",
          "[integration][engine]") {
  temp_dir dir;
  auto effect = dir.file("effect.txt");
  trellis::engine eng{trellis::test::engine_config_for(dir.file("store.db")), demo_tasks()};
  canvas flow = task("touch", {effect});

  auto first = eng.submit(flow, std::string{"order-17"});
  auto second = eng.submit(flow, std::string{"order-17"});

  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->id() == second->id());
  auto a = first->wait_for(max_test_wait);
  auto b = second->wait_for(max_test_wait);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(to_json(*a) == "1");
  CHECK(to_json(*b) == "1");
  // Once more after it finished: still the same workflow, still one run.
  auto third = eng.submit(flow, std::string{"order-17"});
  REQUIRE(third);
  CHECK(third->id() == first->id());
  CHECK(to_json(third->wait_for(max_test_wait).value()) == "1");
  CHECK(trellis::test::line_count(effect) == 1);
}

TEST_CASE("a step whose idempotency key already succeeded returns the stored result without running",
          "[integration][engine]") {
  temp_dir dir;
  auto effect = dir.file("effect.txt");
  trellis::engine eng{trellis::test::engine_config_for(dir.file("store.db")), demo_tasks()};
  auto charge = task("touch", {effect}).idempotency_key("charge-order-17");

  auto first = run(eng, charge);
  // Another workflow, same key: the stored result flows on to the next step.
  auto second = run(eng, trellis::chain(charge, task("add", {100})));

  CHECK(to_json(first) == "1");
  CHECK(to_json(second) == "101");
  CHECK(trellis::test::line_count(effect) == 1);
}

TEST_CASE("handlers see their attempt number, and a retried step succeeds on a later attempt",
          "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};

  auto result = run(eng, task("flaky", {2}).retry(trellis::retry_policy::fixed(3, 1ms)));

  CHECK(to_json(result) == "3");  // attempts 1 and 2 failed; the third returned its number
}

TEST_CASE("a step whose retries run out fails the workflow and leaves a dead letter", "[integration][engine]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  std::string id;
  {
    trellis::engine eng{trellis::test::engine_config_for(db), demo_tasks()};
    auto h = eng.submit(trellis::chain(task("add", {1, 1}),
                                       task("flaky", {5}).immutable().retry(trellis::retry_policy::fixed(2, 1ms))));
    REQUIRE(h);
    id = h->id();

    auto r = h->wait_for(max_test_wait);

    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::workflow_failed);
    CHECK(r.error().message().find("flaky") != std::string::npos);
    CHECK(h->state() == trellis::node_state::failure);
    auto details = h->error_details();
    REQUIRE(details.is_map());
    CHECK(to_json(details.as_map().at("task")) == R"("flaky")");
  }
  auto letter = trellis::test::only_dead_letter(db);
  CHECK(letter.workflow_id == id);
  CHECK(letter.task == "flaky");
  CHECK(letter.attempts == 3);
}

TEST_CASE("submitting a workflow that names an unknown task fails with unknown_task", "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};

  auto h = eng.submit(trellis::chain(task("add", {1, 1}), task("ad", {1})));

  REQUIRE_FALSE(h);
  CHECK(h.error().code() == errc::unknown_task);
  CHECK(h.error().message().find("'ad'") != std::string::npos);
}

TEST_CASE("wait_for gives up with timeout while the workflow carries on", "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  auto h = eng.submit(task("sleep_ms", {2000}));
  REQUIRE(h);

  auto early = h->wait_for(50ms);

  REQUIRE_FALSE(early);
  CHECK(early.error().code() == errc::timeout);
  CHECK(h->state() == trellis::node_state::started);
  auto late = h->wait_for(max_test_wait);
  REQUIRE(late);
  CHECK(to_json(*late) == "2000");
}

TEST_CASE("a workflow outlives the engine that started it and finishes when the store is reopened",
          "[integration][engine]") {
  // Destroying the engine drains: the running first step finishes and is
  // committed, but no handler is left to take the second, so the workflow is
  // unfinished in the store when the engine is gone.
  temp_dir dir;
  auto db = dir.file("store.db");
  std::string id;
  {
    trellis::engine eng{trellis::test::engine_config_for(db), demo_tasks()};
    auto h = eng.submit(trellis::chain(task("sleep_ms", {300}), task("add", {1})));
    REQUIRE(h);
    id = h->id();
  }
  {
    auto unfinished = trellis::test::open_store(db)->unfinished_workflows();
    REQUIRE(unfinished);
    REQUIRE(unfinished->size() == 1);
    CHECK(unfinished->front().id == id);
  }

  trellis::engine eng{trellis::test::engine_config_for(db), demo_tasks()};
  auto restored = eng.restored();

  REQUIRE(restored.size() == 1);
  CHECK(restored.front().id() == id);
  auto r = restored.front().wait_for(max_test_wait);
  REQUIRE(r);
  CHECK(to_json(*r) == "301");
  auto again = eng.find(id);
  REQUIRE(again);
  CHECK(again->state() == trellis::node_state::success);
}

TEST_CASE("find of an id the store does not hold fails with not_found", "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};

  auto h = eng.find("0123456789abcdef0123456789abcdef");

  REQUIRE_FALSE(h);
  CHECK(h.error().code() == errc::not_found);
}

TEST_CASE("submitting after shutdown fails with shutting_down", "[integration][engine]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  eng.shutdown();

  auto h = eng.submit(task("noop"));

  REQUIRE_FALSE(h);
  CHECK(h.error().code() == errc::shutting_down);
}

TEST_CASE("a group of 2,000 members completes with 2,000 results", "[integration][engine]") {
  constexpr std::size_t members = 2000;
  temp_dir dir;
  trellis::engine eng{trellis::test::engine_config_for(dir.file("store.db")), demo_tasks()};
  std::vector<canvas> tasks(members, canvas(task("noop")));

  auto result = run(eng, trellis::group(std::move(tasks)));

  REQUIRE(result.is_array());
  CHECK(result.as_array().size() == members);
  CHECK(std::all_of(result.as_array().begin(), result.as_array().end(), [](const value& v) { return v.is_nil(); }));
}

TEST_CASE("an attempt not started before it expires fails as revoked without running", "[integration][engine]") {
  temp_dir dir;
  auto marker = dir.file("expired.txt");
  auto cfg = trellis::test::engine_config_for(":memory:");
  cfg.concurrency = 1;  // the sleep holds the only handler thread past the expiry
  trellis::engine eng{cfg, demo_tasks()};
  auto h = eng.submit(trellis::group(task("sleep_ms", {200}), task("touch", {marker}).expires(50ms)));
  REQUIRE(h);
  auto r = h->wait_for(max_test_wait);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::workflow_failed);
  auto details = h->error_details();
  REQUIRE(details.is_map());
  const auto& err = details.as_map();
  CHECK(err.at("task") == value("touch"));
  CHECK(err.at("type") == value("revoked"));
  CHECK(trellis::test::line_count(marker) == 0);
}

TEST_CASE("within a queue, a higher priority task runs first", "[integration][engine]") {
  temp_dir dir;
  auto order = dir.file("order.txt");
  auto cfg = trellis::test::engine_config_for(":memory:");
  cfg.concurrency = 1;
  trellis::engine eng{cfg, demo_tasks()};
  // `touch` returns the file's line count after appending: the first to run
  // returns 1. Both messages are published together, so priority decides.
  auto result = run(eng, trellis::group(task("touch", {order}).priority(0), task("touch", {order}).priority(9)));
  CHECK(to_json(result) == "[2,1]");
}

TEST_CASE("an engine can be shut down and destroyed from a thread other than the one that made it",
          "[integration][engine]") {
  auto eng = std::make_unique<trellis::engine>(trellis::test::engine_config_for(":memory:"), demo_tasks());
  CHECK(to_json(run(*eng, task("add", {1, 2}))) == "3");
  std::thread other{[&] {
    eng->shutdown();
    eng.reset();
  }};
  // A hang here is the failure: CAF 0.17 pins its logger in thread-local
  // storage of threads that talked to the actor system.
  other.join();
  CHECK(eng == nullptr);
}

TEST_CASE("metrics count throughput, retries and dead letters per queue and task, and time every stage",
          "[integration][engine][metrics]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  CHECK(to_json(run(eng, trellis::chain(task("add", {1, 1}), task("add", {1})))) == "3");
  auto failing = eng.submit(task("flaky", {5}).retry(trellis::retry_policy::fixed(1, 1ms)));
  REQUIRE(failing);
  REQUIRE_FALSE(failing->wait_for(max_test_wait));

  auto text = eng.metrics_text();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("trellis_tasks_succeeded_total{queue=\"default\",task=\"add\"} 2"));
  CHECK_THAT(text, Catch::Contains("trellis_retries_total{queue=\"default\",task=\"flaky\"} 1"));
  CHECK_THAT(text, Catch::Contains("trellis_dead_letters_total{queue=\"\",task=\"flaky\"} 1"));
  CHECK_THAT(text, Catch::Contains("trellis_handler_duration_seconds_count{queue=\"default\",task=\"flaky\"} 2"));
  CHECK_THAT(text, Catch::Contains("trellis_queue_wait_seconds_count{queue=\"default\",task=\"add\"} 2"));
  CHECK_THAT(text, Catch::Contains("trellis_publish_latency_seconds_count{queue=\"default\",task=\"\"} 4"));
  CHECK_THAT(text, Catch::Contains("trellis_queue_depth{queue=\"default\"} 0"));
}
