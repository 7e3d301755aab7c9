// What a worker reports to `inspect` and how it remembers revoked workflows.

#include "trellis/actors/worker_activity.hpp"

#include <catch2/catch.hpp>

#include <string>

using trellis::detail::active_task;
using trellis::detail::worker_activity;

TEST_CASE("worker activity lists the tasks its handler threads run", "[unit][actors][worker]") {
  worker_activity activity{3};
  CHECK(activity.slots() == 3);
  CHECK(activity.active().empty());
  activity.started(0, active_task{"sleep_ms", "wf-1", 2, 1, 1000});
  activity.started(2, active_task{"add", "wf-2", 0, 3, 2000});
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
  activity.started(7, active_task{"x", "wf", 0, 1, 0});
  CHECK(activity.active().size() == 1);
}

TEST_CASE("worker activity remembers revoked workflows, forgetting the oldest beyond its bound",
          "[unit][actors][worker]") {
  worker_activity activity{1, 2};
  CHECK_FALSE(activity.is_revoked("a"));
  activity.revoke("a");
  activity.revoke("a");
  CHECK(activity.revoked_count() == 1);
  activity.revoke("b");
  activity.revoke("c");
  CHECK(activity.revoked_count() == 2);
  CHECK_FALSE(activity.is_revoked("a"));
  CHECK(activity.is_revoked("b"));
  CHECK(activity.is_revoked("c"));
}
