// `trellis inspect`'s unserved lines: which queued task subjects no live
// worker reads, from the workers' answers and the task stream's census.

#include "cli/inspect_report.hpp"

#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>

using trellis::value;
using trellis::cli::unserved_tasks;
using trellis::detail::queued_subject;
using trellis::detail::subject_space;

namespace {

value::map worker(std::vector<std::string> queues, std::vector<std::string> tasks) {
  value::array q;
  for (auto& s : queues) {
    q.emplace_back(s);
  }
  value::array t;
  for (auto& s : tasks) {
    t.emplace_back(s);
  }
  bool all = queues.empty();
  return value::map{{"role", "worker"}, {"queues", std::move(q)}, {"all_queues", all}, {"tasks", std::move(t)}};
}

}  // namespace

TEST_CASE("a queued task is unserved unless a live worker serves both its queue and its task",
          "[unit][engine][inspect]") {
  std::vector<queued_subject> census{{"default", "add", 3},
                                     {"default", "price_line", 1},
                                     {"billing", "add", 2},
                                     {"default", subject_space::task_token("billing.charge"), 4}};
  SECTION("no worker: everything waits, under its token when nobody announced the name") {
    auto out = unserved_tasks({}, census);
    REQUIRE(out.size() == 4);
    CHECK(out[0].task == "add");
    CHECK(out[0].messages == 3);
    CHECK(out[3].task == subject_space::task_token("billing.charge"));
  }
  SECTION("a worker of every queue serves its tasks in all of them") {
    auto out = unserved_tasks({worker({}, {"add"})}, census);
    REQUIRE(out.size() == 2);
    CHECK(out[0].task == "price_line");
    CHECK(out[1].queue == "default");
  }
  SECTION("a worker of named queues serves only those; an announced name replaces its hash") {
    auto out = unserved_tasks({worker({"billing"}, {"add", "billing.charge"})}, census);
    REQUIRE(out.size() == 3);
    CHECK(out[0].queue == "default");
    CHECK(out[0].task == "add");
    CHECK(out[2].task == "billing.charge");
  }
  SECTION("an answer without tasks (an older release) serves every task of its queues; dispatchers serve none") {
    value::map old{{"role", "worker"}, {"queues", value::array{value{"default"}}}, {"all_queues", false}};
    value::map dispatcher{{"role", "dispatcher"}, {"name", "d"}};
    auto out = unserved_tasks({old, dispatcher}, census);
    REQUIRE(out.size() == 1);
    CHECK(out[0].queue == "billing");
  }
  SECTION("the line") {
    auto line = trellis::cli::unserved_line({"default", "price_line", 1}).as_map();
    CHECK(line.at("role").as_string() == "unserved");
    CHECK(line.at("queue").as_string() == "default");
    CHECK(line.at("task").as_string() == "price_line");
    CHECK(line.at("messages").as_int() == 1);
  }
}
