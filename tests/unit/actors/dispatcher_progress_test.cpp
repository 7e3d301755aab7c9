// The dispatcher stores the progress reports of the attempt a node is
// running, and only those: a report that comes late (after the outcome, for
// an earlier attempt, for a finished workflow, for a node that is no task)
// is counted and dropped, never dead-lettered and never applied elsewhere.

#include "support/dispatcher_harness.hpp"
#include "support/envelopes.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace trellis;
using namespace trellis::detail;

namespace {

using fixture = test::dispatcher_harness<>;

void report(fixture& f, const envelope& task, std::int64_t done, std::string state = {}, std::int32_t node = -2,
            std::int32_t attempt = 0) {
  task_progress p;
  p.done = done;
  p.total = 10;
  p.message = "step " + std::to_string(done);
  p.state = std::move(state);
  auto e = test::progress_envelope(task.id + ":progress", {task.workflow_id, node == -2 ? task.node : node,
                                                             attempt == 0 ? task.attempt : attempt, task.task},
                                   p);
  REQUIRE(f.bus->publish_events({{0, encode(e)}}));
}

}  // namespace

TEST_CASE("the dispatcher stores the running attempt's progress and ignores stale reports",
          "[unit][actors][dispatcher][progress]") {
  test::temp_dir dir;
  auto db = dir.file("progress.db");
  fixture f{db};
  f.submit(chain(signature("a"), signature("b")));
  f.settle();
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  const auto a = tasks[0];

  report(f, a, 3, "UPLOADING");
  report(f, a, 4, "UPLOADING");  // the latest replaces
  f.settle();
  {
    auto rows = test::open_store(db)->progress_of(a.workflow_id);
    REQUIRE(rows);
    REQUIRE(rows->size() == 1);
    CHECK((*rows)[0].node == a.node);
    CHECK((*rows)[0].attempt == 1);
    CHECK((*rows)[0].progress.done == 4);
    CHECK((*rows)[0].progress.state == "UPLOADING");
    CHECK((*rows)[0].task == "a");
  }
  CHECK(f.stats->total(counter::progress_reports) == 2);

  // Another attempt's, a node that is no task (0 is the chain), a node the
  // workflow does not have, a workflow nobody knows: counted, dropped.
  report(f, a, 9, {}, -2, 2);
  report(f, a, 9, {}, 0);
  report(f, a, 9, {}, 77);
  auto stranger = a;
  stranger.workflow_id = "wf-unknown";
  report(f, stranger, 9);
  f.settle();
  CHECK(f.stats->total(counter::progress_ignored) == 4);

  f.report_success(a, 1);
  report(f, a, 10);  // after the outcome: too late
  f.settle();
  CHECK(f.stats->total(counter::progress_ignored) == 5);
  CHECK(f.stats->total(counter::dead_letters) == 0);
  auto rows = test::open_store(db)->progress_of(a.workflow_id);
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].progress.done == 4);  // kept after the node finished

  // The chain went on as if no report had come.
  auto next = f.take_tasks();
  REQUIRE(next.size() == 1);
  CHECK(next[0].task == "b");
  CHECK(next[0].args == value::array{1});
}

TEST_CASE("a malformed progress event is dead-lettered like any unreadable event",
          "[unit][actors][dispatcher][progress]") {
  test::temp_dir dir;
  auto db = dir.file("progress.db");
  fixture f{db};
  auto bytes = test::pack_fields({{"v", 1},
                                  {"type", "progress"},
                                  {"id", "x"},
                                  {"sent_at", 1},
                                  {"wf", "wf-1"},
                                  {"node", 0},
                                  {"attempt", 1},
                                  {"task", "a"},
                                  {"state", "SUCCESS"}});
  REQUIRE(f.bus->publish_events({{0, bytes}}));
  f.settle();
  auto letter = test::only_dead_letter(db);
  CHECK(letter.reason == "malformed_envelope");
  CHECK_THAT(letter.error, Catch::Contains("built-in state"));
}
