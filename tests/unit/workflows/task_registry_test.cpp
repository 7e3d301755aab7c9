#include "trellis/task.hpp"

#include <catch2/catch.hpp>

using namespace trellis;

namespace {

task_context context_for(const char* task) { return task_context{task, "wf", 0, 1, "wf/0", {}}; }

}  // namespace

TEST_CASE("a typed handler converts its arguments and its result", "[unit][task]") {
  task_registry tasks;
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto ctx = context_for("add");
  auto r = tasks.find("add")->handler(ctx, value::array{2, 3});
  REQUIRE_FALSE(r.is_retry());
  CHECK(r.result() == value(5));
}

TEST_CASE("a handler returning void yields nil", "[unit][task]") {
  task_registry tasks;
  tasks.add("noop", [](task_context&) {});
  auto ctx = context_for("noop");
  CHECK(tasks.find("noop")->handler(ctx, {}).result().is_nil());
}

TEST_CASE("a retry request travels as a result, not as an exception", "[unit][task][retry]") {
  task_registry tasks;
  tasks.add("busy", [](task_context& ctx) -> task_result<std::string> {
    return ctx.retry_later("gateway busy", std::chrono::milliseconds{250});
  });
  auto ctx = context_for("busy");
  auto r = tasks.find("busy")->handler(ctx, {});
  REQUIRE(r.is_retry());
  CHECK(r.retry().reason == "gateway busy");
  CHECK(r.retry().countdown == std::chrono::milliseconds{250});
}

TEST_CASE("wrong arity or argument types reject the message with the place named", "[unit][task]") {
  task_registry tasks;
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto ctx = context_for("add");
  const auto& handler = tasks.find("add")->handler;
  SECTION("too many arguments") {
    CHECK_THROWS_WITH(handler(ctx, value::array{1, 2, 3}), Catch::Contains("takes 2 argument(s), got 3"));
  }
  SECTION("a string where an integer belongs") {
    CHECK_THROWS_AS(handler(ctx, value::array{1, "two"}), task_rejected);
    CHECK_THROWS_WITH(handler(ctx, value::array{1, "two"}), Catch::Contains("argument 2 of add"));
  }
}

TEST_CASE("registering a name twice is a usage error", "[unit][task]") {
  task_registry tasks;
  tasks.add("x", [](task_context&) {});
  CHECK_THROWS_AS(tasks.add("x", [](task_context&) {}), usage_error);
  CHECK_THROWS_AS(tasks.add("", [](task_context&) {}), usage_error);
}

TEST_CASE("registration defaults are kept per task", "[unit][task]") {
  task_registry tasks;
  tasks.add("charge", [](task_context&) {}).queue("payments").retry(retry_policy::fixed(3, std::chrono::seconds{1}));
  const auto* t = tasks.find("charge");
  REQUIRE(t != nullptr);
  CHECK(t->defaults.queue == "payments");
  CHECK(t->defaults.retry.max_retries == 3);
}

TEST_CASE("unknown task names are reported with their place in the workflow", "[unit][task]") {
  task_registry tasks;
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto flow = to_value(
      chain(signature("add", {1, 1}), chord({signature("add", {1, 2}), signature("ad")}, signature("add", {0}))));
  auto r = check_tasks_known(flow, tasks);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::unknown_task);
  CHECK(r.error().message() == "$.chain[1].chord.header[1]: unknown task 'ad'");
}
