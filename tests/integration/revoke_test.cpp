// Revoking through the embedded engine's C++ API and `trellis revoke --db`,
// as Celery's `revoke` does: one node of a running workflow (its chain stops,
// its group carries on, its chord fails), a node still waiting (it never
// runs), the whole workflow, and `terminate`, which stops the handler.

#include "support/child_process.hpp"
#include "support/engine_run.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using trellis::errc;
using trellis::node_state;
using trellis::signature;
using trellis::value;
using trellis::test::max_test_wait;
using trellis::test::temp_dir;
using trellis::test::wait_until;

/// A task the test holds: `hold` reports that it started, then waits until
/// the test releases it or its attempt is asked to stop.
struct holder {
  std::mutex mutex;
  std::condition_variable released_cv;
  bool released = false;
  std::atomic<int> started{0};
  std::atomic<int> stopped_early{0};

  void release() {
    {
      std::lock_guard<std::mutex> guard{mutex};
      released = true;
    }
    released_cv.notify_all();
  }
};

/// The demo tasks plus `hold(x)`, which returns x once released.
trellis::task_registry tasks_with(const std::shared_ptr<holder>& h) {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  tasks.add("hold", {"x"}, [h](trellis::task_context& ctx, std::int64_t x) {
    ++h->started;
    std::unique_lock<std::mutex> lock{h->mutex};
    while (!h->released) {
      if (ctx.cancelled()) {
        ++h->stopped_early;
        ctx.throw_if_cancelled();
      }
      // The stop token has no callback into this wait: look again often.
      h->released_cv.wait_for(lock, 10ms);
    }
    return x;
  });
  return tasks;
}

signature task(std::string name, value::array args = {}) { return signature(std::move(name), std::move(args)); }

/// Waits until `n` holds have started.
void wait_started(const holder& h, int n) {
  REQUIRE(wait_until([&] { return h.started.load() >= n; }, max_test_wait, "the held tasks to start"));
}

/// The revoked node ids in an answer to a node revoke.
std::vector<std::int64_t> revoked_nodes(const value& answer) {
  std::vector<std::int64_t> out;
  for (const auto& v : answer.as_map().at("revoked").as_array()) {
    out.push_back(v.as<std::int64_t>());
  }
  return out;
}

}  // namespace

TEST_CASE("revoking the running step of a chain ends it REVOKED at once; the steps after it never run",
          "[integration][engine][revoke]") {
  auto h = std::make_shared<holder>();
  temp_dir dir;
  auto later = dir.file("later");
  trellis::engine eng{trellis::test::engine_config_for(dir.file("r.db")), tasks_with(h)};
  // Nodes: 0 the chain, 1 hold, 2 touch.
  auto handle = eng.submit(trellis::chain(task("hold", {1}), task("touch", {later}).immutable()));
  REQUIRE(handle);
  wait_started(*h, 1);

  auto answer = eng.revoke(handle->id(), {1, false});
  INFO((answer ? to_json(*answer) : to_string(answer.error())));
  REQUIRE(answer);
  CHECK(answer->as_map().at("state") == value("REVOKED"));
  CHECK(revoked_nodes(*answer) == std::vector<std::int64_t>{1});

  auto outcome = handle->wait_for(max_test_wait);
  REQUIRE_FALSE(outcome);
  CHECK(outcome.error().code() == errc::revoked);
  CHECK(handle->state() == node_state::revoked);
  CHECK(handle->error_details().as_map().at("task") == value("hold"));
  // Without terminate the handler still runs; released, its result is discarded.
  CHECK(h->stopped_early == 0);
  h->release();
  eng.shutdown();
  CHECK_FALSE(trellis::test::read_file(later).has_value());
}

TEST_CASE("a revoked group member leaves the others to finish; a revoked chord header member fails the chord",
          "[integration][engine][revoke]") {
  auto h = std::make_shared<holder>();
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), tasks_with(h)};

  SECTION("group: the others finish, and the group ends REVOKED") {
    // Nodes: 0 the group, 1 hold, 2 add.
    auto handle = eng.submit(trellis::group(task("hold", {5}), task("add", {1, 2})));
    REQUIRE(handle);
    wait_started(*h, 1);
    REQUIRE(eng.revoke(handle->id(), {1, true}));
    auto outcome = handle->wait_for(max_test_wait);
    REQUIRE_FALSE(outcome);
    CHECK(outcome.error().code() == errc::revoked);
    // terminate: the handler saw its stop token and ended early.
    REQUIRE(wait_until([&] { return h->stopped_early.load() == 1; }, max_test_wait, "the hold to stop"));
  }
  SECTION("chord: the body never runs, and the workflow fails as Celery's ChordError") {
    // Nodes: 0 the chord, 1 hold, 2 add, 3 xsum.
    auto handle = eng.submit(trellis::chord({task("hold", {5}), task("add", {1, 2})}, task("xsum")));
    REQUIRE(handle);
    wait_started(*h, 1);
    REQUIRE(eng.revoke(handle->id(), {1, true}));
    auto outcome = handle->wait_for(max_test_wait);
    REQUIRE_FALSE(outcome);
    CHECK(outcome.error().code() == errc::workflow_failed);
    CHECK(handle->state() == node_state::failure);
    CHECK(handle->error_details().as_map().at("type") == value("revoked"));
    CHECK(handle->error_details().as_map().at("task") == value("hold"));
  }
  h->release();
}

TEST_CASE("a chain step revoked while it waits never runs, and a revoked subtree takes every task under it",
          "[integration][engine][revoke]") {
  auto h = std::make_shared<holder>();
  temp_dir dir;
  auto never = dir.file("never");
  trellis::engine eng{trellis::test::engine_config_for(dir.file("w.db")), tasks_with(h)};
  // Nodes: 0 the chain, 1 hold, 2 the group, 3 touch, 4 add.
  auto handle = eng.submit(
      trellis::chain(task("hold", {1}), trellis::group(task("touch", {never}).immutable(), task("add", {1}))));
  REQUIRE(handle);
  wait_started(*h, 1);
  auto answer = eng.revoke(handle->id(), {2, false});
  INFO((answer ? to_json(*answer) : to_string(answer.error())));
  REQUIRE(answer);
  CHECK(revoked_nodes(*answer) == std::vector<std::int64_t>{3, 4});
  CHECK(handle->state() == node_state::started);  // `hold` still runs

  h->release();
  auto outcome = handle->wait_for(max_test_wait);
  REQUIRE_FALSE(outcome);
  CHECK(outcome.error().code() == errc::revoked);
  CHECK_FALSE(trellis::test::read_file(never).has_value());

  // What is finished cannot be revoked again; a node it lacks is not found.
  auto again = eng.revoke(handle->id(), {2, false});
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == errc::invalid_workflow);
  auto unknown = eng.revoke("no-such-workflow");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code() == errc::not_found);
}

TEST_CASE("revoking a whole workflow with terminate stops its running handler and skips the rest",
          "[integration][engine][revoke]") {
  auto h = std::make_shared<holder>();
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), tasks_with(h)};
  auto handle = eng.submit(trellis::chain(task("hold", {1}), task("add", {1})));
  REQUIRE(handle);
  wait_started(*h, 1);
  auto answer = eng.revoke(handle->id(), {std::nullopt, true});
  REQUIRE(answer);
  CHECK(answer->as_map().at("state") == value("REVOKED"));
  auto outcome = handle->wait_for(max_test_wait);
  REQUIRE_FALSE(outcome);
  CHECK(outcome.error().code() == errc::revoked);
  CHECK(handle->error_details().as_map().at("type") == value("revoked"));
  REQUIRE(wait_until([&] { return h->stopped_early.load() == 1; }, max_test_wait, "the hold to stop"));
  // The engine goes on: a later workflow runs.
  auto next = eng.submit(task("add", {2, 3}));
  REQUIRE(next);
  auto sum = next->wait_for(max_test_wait);
  REQUIRE(sum);
  CHECK(*sum == value(5));
}

TEST_CASE("terminate abandons a handler that ignores its stop once the grace passes, when it has a hard limit",
          "[integration][engine][revoke][time_limits]") {
  auto h = std::make_shared<holder>();
  auto tasks = tasks_with(h);
  // `stubborn` never looks at its stop token.
  tasks.add("stubborn", [h](trellis::task_context&) {
    ++h->started;
    std::unique_lock<std::mutex> lock{h->mutex};
    h->released_cv.wait(lock, [&] { return h->released; });
  });
  auto cfg = trellis::test::engine_config_for(":memory:");
  cfg.concurrency = 1;
  trellis::engine eng{cfg, std::move(tasks)};
  // Its 60 s hard limit lets the worker abandon it; terminate does so after
  // the grace, long before the limit.
  auto handle = eng.submit(task("stubborn").time_limit(60'000ms));
  REQUIRE(handle);
  wait_started(*h, 1);
  auto revoked_at = std::chrono::steady_clock::now();
  REQUIRE(eng.revoke(handle->id(), {std::nullopt, true}));
  auto outcome = handle->wait_for(max_test_wait);
  REQUIRE_FALSE(outcome);
  CHECK(outcome.error().code() == errc::revoked);
  // The one handler thread is free again after the grace (2 s) and the
  // 200 ms bound of a hard limit: a task submitted now runs.
  auto next = eng.submit(task("add", {2, 3}));
  REQUIRE(next);
  auto sum = next->wait_for(max_test_wait);
  REQUIRE(sum);
  CHECK(*sum == value(5));
  CHECK(std::chrono::steady_clock::now() - revoked_at < 10s);
  CHECK(eng.metrics_text().find("trellis_abandoned_handlers_total{queue=\"default\",task=\"stubborn\"} 1") !=
        std::string::npos);
  h->release();
}

TEST_CASE("trellis revoke --db revokes a node, then the rest, of a stopped engine's unfinished workflow",
          "[integration][cli][revoke]") {
  temp_dir dir;
  auto db = dir.file("cli.db");
  std::string id;
  {
    trellis::engine eng{trellis::test::engine_config_for(db), tasks_with(std::make_shared<holder>())};
    // Nodes: 0 the chain, 1 add (due in a minute), 2 add. The engine stops
    // before the first is due: the workflow stays unfinished in the store.
    auto handle = eng.submit(trellis::chain(task("add", {1, 1}).countdown(60'000ms), task("add", {1})));
    REQUIRE(handle);
    id = handle->id();
  }
  auto revoke = [&](std::vector<std::string> extra, const std::string& name) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN, "revoke", id, "--db", db};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = trellis::test::run_command(argv, dir.file(name), max_test_wait);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    REQUIRE_FALSE(r.timed_out);
    return r;
  };
  auto node = revoke({"--node", "2"}, "node");
  REQUIRE(node.status == 0);
  auto line = nlohmann::json::parse(node.last_line());
  CHECK(line == nlohmann::json{{"id", id}, {"node", 2}, {"state", "REVOKED"}, {"revoked", {2}}});

  auto whole = revoke({}, "whole");
  REQUIRE(whole.status == 0);
  auto outcome = trellis::test::parse_outcome_line(whole.last_line());
  CHECK(outcome["state"] == "REVOKED");
  CHECK(outcome["error"]["type"] == "revoked");

  // Finished now: revoking again is refused, and a bad node is a usage error.
  auto again = revoke({}, "again");
  CHECK(again.status == 2);
  CHECK(again.out.empty());
  CHECK_THAT(again.err, Catch::Contains("already finished as REVOKED"));
  auto bad = revoke({"--node", "-1"}, "bad");
  CHECK(bad.status == 2);
  CHECK(bad.out.empty());
}
