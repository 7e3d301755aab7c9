// What the waiting commands draw and `trellis list` prints, without a
// process: the progress line's counts and text, and the list's line and
// table, and which tasks `submit --wait` warns no live worker serves
// (docs/cli.md "Waiting", "Listing workflows").

#include "cli/list_command.hpp"
#include "cli/progress_line.hpp"
#include "cli/serve_check.hpp"

#include "trellis/canvas.hpp"
#include "trellis/store/workflow_pages.hpp"
#include "trellis/task.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using trellis::value;
using trellis::cli::counts_of;
using trellis::cli::progress_counts;
using trellis::cli::progress_text;
using trellis::detail::workflow_summary;

namespace {

value status_with(std::vector<std::string> states) {
  value::array nodes;
  std::int32_t n = 0;
  for (const auto& s : states) {
    value::map row{{"node", ++n}, {"state", s}};
    nodes.emplace_back(std::move(row));
  }
  value::map doc{{"id", "w"}, {"state", "STARTED"}, {"nodes", std::move(nodes)}};
  return value(std::move(doc));
}

}  // namespace

TEST_CASE("progress counts: finished nodes are done, FAILURE ones failed too, STARTED ones running",
          "[unit][cli_talks]") {
  auto c = counts_of(status_with({"SUCCESS", "FAILURE", "STARTED", "REVOKED", "RETRY", "bogus"}), 9);
  CHECK(c.done == 3);
  CHECK(c.failed == 1);
  CHECK(c.running == 1);
  CHECK(c.total == 9);

  auto none = counts_of(value("not a document"), 4);
  CHECK(none.done == 0);
  CHECK(none.total == 4);
}

TEST_CASE("progress text: done/total, running, failed and the elapsed time in tenths", "[unit][cli_talks]") {
  progress_counts c;
  c.done = 3;
  c.total = 7;
  c.running = 2;
  CHECK(progress_text(c, std::chrono::milliseconds{12'345}) == "3/7 nodes done, 2 running, 0 failed, 12.3 s");
  c.total = 0;  // unknown (resume, dlq replay)
  c.failed = 1;
  CHECK(progress_text(c, std::chrono::milliseconds{40}) == "3 nodes done, 2 running, 1 failed, 0.0 s");
}

TEST_CASE("progress line: disabled, it never draws", "[unit][cli_talks]") {
  int asked = 0;
  trellis::cli::progress_line line{false,
                                   [&] {
                                     ++asked;
                                     return std::optional<value>{};
                                   },
                                   3};
  line.tick();
  line.clear();
  CHECK(asked == 0);
}

TEST_CASE("list: the JSON line and the table of workflows", "[unit][cli_talks]") {
  workflow_summary done;
  done.id = "aaaa";
  done.submit_key = "order-17";
  done.state = trellis::node_state::success;
  done.created_at = 1'796'592'722'000;  // 2026-12-06 21:32:02 UTC
  done.finished_at = 1'796'592'723'500;
  workflow_summary running;
  running.id = "bbbb";
  running.state = trellis::node_state::started;
  running.created_at = 1'796'592'724'000;

  CHECK(to_json(trellis::detail::list_line(done)) ==
        R"({"created_at":1796592722000,"finished_at":1796592723500,"id":"aaaa","key":"order-17","state":"SUCCESS"})");
  CHECK(to_json(trellis::detail::list_line(running)) ==
        R"({"created_at":1796592724000,"finished_at":null,"id":"bbbb","key":null,"state":"STARTED"})");

  CHECK(trellis::cli::list_table({done, running}) ==
        "ID    STATE    CREATED (UTC)        FINISHED (UTC)       KEY\n"
        "aaaa  SUCCESS  2026-12-06 21:32:02  2026-12-06 21:32:03  order-17\n"
        "bbbb  STARTED  2026-12-06 21:32:04  -                    -\n");
}

TEST_CASE("submit's warning: the workflow's tasks that no live worker serves", "[unit][cli_talks]") {
  using trellis::cli::needed_task;
  trellis::task_registry tasks;
  tasks.add("registered", [](trellis::task_context&) {});
  auto flow = trellis::chain({trellis::signature{"a"}.queue("fast"), trellis::signature{"registered"},
                              trellis::group({trellis::signature{"b"}, trellis::signature{"a"}.queue("fast")})});
  auto needs = trellis::cli::needed_tasks(flow, tasks);
  REQUIRE(needs.size() == 3);
  CHECK(needs[0] == needed_task{"a", "fast"});
  CHECK(needs[1] == needed_task{"registered", "default"});  // its registration's queue
  CHECK(needs[2] == needed_task{"b", std::nullopt});        // only the dispatcher knows

  auto worker = [](std::vector<std::string> queues, std::vector<std::string> names) {
    value::array q(queues.begin(), queues.end());
    value::array t(names.begin(), names.end());
    value::map m{{"role", "worker"}, {"all_queues", queues.empty()}, {"queues", std::move(q)}, {"tasks", std::move(t)}};
    return m;
  };
  // Serves queue "other" only: the tasks of "fast" and "default" wait.
  auto unserved = trellis::cli::unserved_needs({worker({"other"}, {"a", "registered", "b"})}, needs);
  REQUIRE(unserved.size() == 2);
  CHECK(trellis::cli::unserved_warning(unserved[0]) ==
        "no live worker serves task a in queue fast; the workflow waits for one");
  CHECK(unserved[1].task == "registered");
  // Every queue, but not every task.
  auto missing_b = trellis::cli::unserved_needs({worker({}, {"a", "registered"})}, needs);
  REQUIRE(missing_b.size() == 1);
  CHECK(trellis::cli::unserved_warning(missing_b[0]) ==
        "no live worker serves task b in any queue; the workflow waits for one");
  // No worker at all; a dispatcher's answer serves nothing.
  value::map dispatcher{{"role", "dispatcher"}};
  CHECK(trellis::cli::unserved_needs({dispatcher}, needs).size() == 3);
}
