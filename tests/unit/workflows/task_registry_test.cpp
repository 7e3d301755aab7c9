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

namespace {

task_context context_with(const char* task, value::map kwargs) {
  return task_context{task, "wf", 0, 1, "wf/0", std::move(kwargs)};
}

/// `add(x, y)` with names, and `greet(name, greeting="hello", punctuation="!")`.
task_registry named_tasks() {
  task_registry tasks;
  // [named-parameters]
  tasks.add("add", {"x", "y"}, [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  tasks.add("greet", {"name", param("greeting", "hello"), param("punctuation", "!")},
            [](task_context&, std::string name, std::string greeting, std::string punctuation) {
              return greeting + ", " + name + punctuation;
            });
  // [named-parameters]
  return tasks;
}

value call(const task_registry& tasks, const char* task, value::array args, value::map kwargs) {
  auto ctx = context_with(task, std::move(kwargs));
  auto r = tasks.find(task)->handler(ctx, args);
  REQUIRE_FALSE(r.is_retry());
  return r.result();
}

}  // namespace

TEST_CASE("named parameters bind the input and args by position, then kwargs by name, then defaults",
          "[unit][task][kwargs]") {
  auto tasks = named_tasks();
  CHECK(call(tasks, "add", {4}, {{"y", 10}}) == value(14));  // the input binds x, the keyword y
  CHECK(call(tasks, "add", {}, {{"x", 1}, {"y", 2}}) == value(3));
  CHECK(call(tasks, "add", {5, 6}, {}) == value(11));
  CHECK(call(tasks, "greet", {"Ada"}, {}) == value("hello, Ada!"));
  CHECK(call(tasks, "greet", {"Ada", "hi"}, {}) == value("hi, Ada!"));
  CHECK(call(tasks, "greet", {"Ada"}, {{"punctuation", "?"}}) == value("hello, Ada?"));
  CHECK(call(tasks, "greet", {}, {{"name", "Bob"}, {"greeting", "hey"}}) == value("hey, Bob!"));
  CHECK(tasks.find("add")->params == std::vector<std::string>{"x", "y"});
}

TEST_CASE("a keyword that is unknown, given twice or missing rejects the call and names the parameter",
          "[unit][task][kwargs]") {
  auto tasks = named_tasks();
  auto attempt = [&](const char* task, value::array args, value::map kwargs) {
    auto ctx = context_with(task, std::move(kwargs));
    tasks.find(task)->handler(ctx, args);
  };
  SECTION("an unknown keyword") {
    CHECK_THROWS_AS(attempt("add", {1, 2}, {{"z", 99}}), task_rejected);
    CHECK_THROWS_WITH(attempt("add", {1, 2}, {{"z", 99}}),
                      "add: unknown keyword argument 'z' (its parameters are x, y)");
  }
  SECTION("a parameter given by position and by keyword") {
    CHECK_THROWS_WITH(attempt("add", {1, 2}, {{"x", 3}}),
                      "add: argument 'x' given twice, by position (argument 1) and by keyword");
  }
  SECTION("a parameter given neither way") {
    CHECK_THROWS_WITH(attempt("add", {1}, {}), "add: missing argument 'y'");
    CHECK_THROWS_WITH(attempt("add", {}, {}), "add: missing argument 'x', 'y'");
    CHECK_THROWS_WITH(attempt("greet", {}, {{"greeting", "hi"}}), "greet: missing argument 'name'");
  }
  SECTION("too many positional arguments") {
    CHECK_THROWS_WITH(attempt("add", {1, 2, 3}, {}), "add takes 2 argument(s) (x, y), got 3 positional");
  }
  SECTION("a keyword value of the wrong type names the parameter") {
    CHECK_THROWS_WITH(attempt("add", {1}, {{"y", "two"}}), "argument 'y' of add: cannot convert str \"two\"");
  }
}

TEST_CASE("an unnamed typed handler takes positional arguments only and refuses any keyword by name",
          "[unit][task][kwargs]") {
  task_registry tasks;
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  CHECK(call(tasks, "add", {1, 2}, {}) == value(3));
  auto ctx = context_with("add", {{"y", 2}});
  CHECK_THROWS_AS(tasks.find("add")->handler(ctx, value::array{1}), task_rejected);
  CHECK_THROWS_WITH(tasks.find("add")->handler(ctx, value::array{1}),
                    Catch::StartsWith("add: unknown keyword argument 'y' (add takes positional arguments only"));
  CHECK(tasks.find("add")->params.empty());
}

TEST_CASE("a raw handler still sees every keyword argument as it came", "[unit][task][kwargs]") {
  task_registry tasks;
  tasks.add_raw("echo", [](task_context& ctx, const value::array& args) -> task_result<value> {
    return value(value::array{value(args), value(ctx.kwargs())});
  });
  CHECK(call(tasks, "echo", {1}, {{"any", true}}) ==
        value(value::array{value(value::array{1}), value(value::map{{"any", true}})}));
}

TEST_CASE("parameter names that do not fit the handler are a usage error at registration", "[unit][task][kwargs]") {
  task_registry tasks;
  auto two = [](task_context&, std::int64_t x, std::int64_t y) { return x + y; };
  CHECK_THROWS_WITH(tasks.add("a", {"x"}, two),
                    "task 'a': 1 parameter name(s) for a handler of 2 argument(s) after its task_context");
  CHECK_THROWS_WITH(tasks.add("b", {"x", "x"}, two), "task 'b': parameter 'x' is named twice");
  CHECK_THROWS_WITH(tasks.add("c", {"x", ""}, two), "task 'c': a parameter name must not be empty");
  CHECK_THROWS_WITH(tasks.add("d", {param("x", 1), "y"}, two),
                    "task 'd': parameter 'y' has no default but follows 'x', which has one; only trailing "
                    "parameters take defaults");
  CHECK_THROWS_WITH(tasks.add("e", {"x", param("y", "ten")}, two),
                    "task 'e': the default of parameter 'y', \"ten\", does not convert to the parameter's type");
  CHECK(tasks.empty());
}
