// What a worker reports to `inspect` and how it remembers revoked workflows.

#include "trellis/actors/worker_activity.hpp"

#include <catch2/catch.hpp>

#include <string>

using trellis::detail::active_task;
using trellis::detail::worker_activity;

namespace {

active_task running(std::string task, std::string wf, std::int32_t node, std::int32_t attempt, std::int64_t at) {
  active_task t;
  t.task = std::move(task);
  t.workflow_id = std::move(wf);
  t.node = node;
  t.attempt = attempt;
  t.started_at = at;
  return t;
}

}  // namespace

TEST_CASE("worker activity lists the tasks its handler threads run", "[unit][actors][worker]") {
  worker_activity activity{3};
  CHECK(activity.slots() == 3);
  CHECK(activity.active().empty());
  activity.started(0, running("sleep_ms", "wf-1", 2, 1, 1000));
  activity.started(2, running("add", "wf-2", 0, 3, 2000));
  auto now = activity.active();
  REQUIRE(now.size() == 2);
  CHECK(now[0].task == "sleep_ms");
  CHECK(now[0].workflow_id == "wf-1");
  CHECK(now[0].node == 2);
  CHECK(now[1].attempt == 3);
  activity.finished(0);
  REQUIRE(activity.active().size() == 1);
  CHECK(activity.active()[0].task == "add");
  // A slot out of range is ignored rather than trusted.
  activity.started(7, running("x", "wf", 0, 1, 0));
  CHECK(activity.active().size() == 1);
}

TEST_CASE("worker activity remembers revoked workflows, forgetting the oldest beyond its bound",
          "[unit][actors][worker]") {
  worker_activity activity{1, 2};
  CHECK_FALSE(activity.is_revoked("a", 0));
  activity.revoke("a");
  activity.revoke("a");
  CHECK(activity.revoked_count() == 1);
  CHECK(activity.is_revoked("a", 5));  // every node of a revoked workflow
  activity.revoke("b");
  activity.revoke("c");
  CHECK(activity.revoked_count() == 2);
  CHECK_FALSE(activity.is_revoked("a", 0));
  CHECK(activity.is_revoked("b", 0));
  CHECK(activity.is_revoked("c", 0));
}

TEST_CASE("worker activity remembers revoked nodes, one by one", "[unit][actors][worker]") {
  worker_activity activity{1};
  activity.revoke("wf", {2, 4});
  CHECK(activity.revoked_count() == 2);
  CHECK(activity.is_revoked("wf", 2));
  CHECK(activity.is_revoked("wf", 4));
  CHECK_FALSE(activity.is_revoked("wf", 3));
  CHECK_FALSE(activity.is_revoked("other", 2));
}

TEST_CASE("a revoke with terminate stops exactly the handlers running the revoked tasks", "[unit][actors][worker]") {
  worker_activity activity{3};
  int stopped[3] = {0, 0, 0};
  auto start = [&](int slot, const char* wf, std::int32_t node) {
    auto t = running("sleep_ms", wf, node, 1, 0);
    t.terminate = [&stopped, slot] { ++stopped[slot]; };
    activity.started(static_cast<std::size_t>(slot), std::move(t));
  };
  start(0, "wf", 1);
  start(1, "wf", 2);
  start(2, "other", 1);
  activity.revoke("wf", {2});  // without terminate: nothing is stopped
  CHECK(stopped[1] == 0);
  activity.revoke("wf", {2}, true);
  CHECK(stopped[0] == 0);
  CHECK(stopped[1] == 1);
  CHECK(stopped[2] == 0);
  activity.revoke("wf", {}, true);  // the whole workflow
  CHECK(stopped[0] == 1);
  CHECK(stopped[1] == 2);
  CHECK(stopped[2] == 0);
}
