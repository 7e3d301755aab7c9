// One task message in, one outcome out: every way a handler can end, and
// every kind of poison, checked after the outcome has crossed the wire
// (encode, then strict decode), since that is what the dispatcher sees.

#include "trellis/actors/task_runner.hpp"
#include "trellis/clock.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <thread>

using namespace trellis;
using namespace trellis::detail;

namespace {

task_registry sample_tasks() {
  task_registry tasks;
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  tasks.add("boom", [](task_context&) -> value { throw std::invalid_argument("no such order"); });
  tasks.add("picky", [](task_context&) -> value { throw task_rejected("order id is malformed"); });
  tasks.add("busy", [](task_context& ctx) -> task_result<value> {
    return ctx.retry_later("gateway busy", std::chrono::milliseconds{1500});
  });
  tasks.add("slow", [](task_context&) {
    std::this_thread::sleep_for(std::chrono::milliseconds{30});
    return 1;
  });
  tasks.add("key", [](task_context& ctx) { return ctx.idempotency_key() + "#" + std::to_string(ctx.attempt()); });
  tasks.add("named_add", {"x", "y"}, [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  tasks.add("db_down", [](task_context&) -> value { throw task_error("connection_error", "db down"); });
  tasks.add("untyped_error", [](task_context&) -> value { throw task_error("", "no type given"); });
  return tasks;
}

envelope task_message(std::string task, value::array args = {}, value::map kwargs = {}) {
  envelope e;
  e.type = envelope_type::task;
  e.id = "wf:3:2";
  e.workflow_id = "wf";
  e.node = 3;
  e.attempt = 2;
  e.task = std::move(task);
  e.queue = "default";
  e.args = std::move(args);
  e.kwargs = std::move(kwargs);
  e.options["idempotency_key"] = "wf/3";
  e.sent_at = now_epoch_ms();
  return e;
}

/// Runs the message and returns its outcome as the dispatcher would read it.
envelope outcome_of(const std::string& bytes) {
  static const auto tasks = sample_tasks();
  auto run = run_task_message(bytes, tasks);
  auto wire = decode(encode(run.outcome));
  INFO((wire ? std::string{} : to_string(wire.error())));
  REQUIRE(wire);
  return *wire;
}

envelope outcome_of(const envelope& task) { return outcome_of(encode(task)); }

}  // namespace

TEST_CASE("a handler's result comes back as a success outcome of the same attempt", "[unit][actors][worker]") {
  auto out = outcome_of(task_message("add", {2, 3}));
  CHECK(out.type == envelope_type::outcome);
  CHECK(out.status == outcome_status::success);
  CHECK(out.payload == value(5));
  CHECK(out.workflow_id == "wf");
  CHECK(out.node == 3);
  CHECK(out.attempt == 2);
}

TEST_CASE("handlers see the idempotency key and the attempt number", "[unit][actors][worker]") {
  CHECK(outcome_of(task_message("key")).payload == value("wf/3#2"));
}

TEST_CASE("an exception becomes a failure naming the exception type and message", "[unit][actors][worker]") {
  auto out = outcome_of(task_message("boom"));
  CHECK(out.status == outcome_status::failure);
  CHECK(out.error_type == "std::invalid_argument");
  CHECK(out.error_message == "no such order");
}

TEST_CASE("a task_error's own type is the failure's error type, for the retry filters",
          "[unit][actors][worker][retry-filters]") {
  auto out = outcome_of(task_message("db_down"));
  CHECK(out.status == outcome_status::failure);
  CHECK(out.error_type == "connection_error");
  CHECK(out.error_message == "db down");
  auto untyped = outcome_of(task_message("untyped_error"));
  CHECK(untyped.status == outcome_status::failure);
  CHECK(untyped.error_type == "task_error");
}

TEST_CASE("the task message's kwargs bind by name, and an unknown one is rejected naming it",
          "[unit][actors][worker][kwargs]") {
  auto bound = outcome_of(task_message("named_add", {4}, {{"y", 10}}));
  CHECK(bound.status == outcome_status::success);
  CHECK(bound.payload == value(14));
  auto unknown = outcome_of(task_message("named_add", {1, 2}, {{"z", 99}}));
  CHECK(unknown.status == outcome_status::rejected);
  CHECK(unknown.error_type == "bad_arguments");
  CHECK(unknown.error_message == "named_add: unknown keyword argument 'z' (its parameters are x, y)");
  auto unnamed = outcome_of(task_message("add", {1}, {{"y", 2}}));
  CHECK(unnamed.status == outcome_status::rejected);
  CHECK(unnamed.error_type == "bad_arguments");
  CHECK(unnamed.error_message.find("unknown keyword argument 'y'") != std::string::npos);
}

TEST_CASE("task_rejected and wrong arguments are rejected as bad_arguments", "[unit][actors][worker]") {
  auto thrown = outcome_of(task_message("picky"));
  CHECK(thrown.status == outcome_status::rejected);
  CHECK(thrown.error_type == "bad_arguments");
  auto arity = outcome_of(task_message("add", {1}));
  CHECK(arity.status == outcome_status::rejected);
  CHECK(arity.error_type == "bad_arguments");
}

TEST_CASE("a retry request keeps its reason and its countdown across the wire", "[unit][actors][worker][retry]") {
  auto out = outcome_of(task_message("busy"));
  CHECK(out.status == outcome_status::retry);
  CHECK(out.error_message == "gateway busy");
  CHECK(out.payload == value(1500));
}

TEST_CASE("an unknown task name is rejected as unknown_task", "[unit][actors][worker]") {
  auto out = outcome_of(task_message("nope"));
  CHECK(out.status == outcome_status::rejected);
  CHECK(out.error_type == "unknown_task");
  CHECK(out.error_message.find("'nope'") != std::string::npos);
}

TEST_CASE("bytes that are no envelope are rejected with the original bytes kept", "[unit][actors][worker][dlq]") {
  const std::string garbage = "\xc1\x00 definitely not msgpack";
  auto out = outcome_of(garbage);
  CHECK(out.status == outcome_status::rejected);
  CHECK(out.error_type == "malformed_envelope");
  REQUIRE(out.payload.is_binary());
  const auto& bytes = out.payload.as_binary().bytes;
  CHECK(std::string(bytes.begin(), bytes.end()) == garbage);
}

TEST_CASE("a task option this build does not know is refused, not ignored", "[unit][actors][worker]") {
  auto msg = task_message("add", {1, 1});
  msg.options["sign_with"] = "hmac";
  auto out = outcome_of(msg);
  CHECK(out.status == outcome_status::rejected);
  CHECK(out.error_type == "unsupported_version");
}

TEST_CASE("a chunk message calls the handler once per argument list and returns the list", "[unit][actors][worker]") {
  value::array calls{value::array{1, 2}, value::array{3, 4}, value::array{5, 6}};
  value::array args;
  args.emplace_back(calls);
  auto msg = task_message("add", args);
  msg.options["chunk"] = true;
  auto out = outcome_of(msg);
  CHECK(out.status == outcome_status::success);
  CHECK(to_json(out.payload) == "[3,7,11]");

  SECTION("a call that does not fit rejects the chunk as bad_arguments") {
    value::array bad;
    bad.emplace_back(value::array{value::array{1, 2}, value::array{"x"}});
    auto wrong = task_message("add", bad);
    wrong.options["chunk"] = true;
    auto refused = outcome_of(wrong);
    CHECK(refused.status == outcome_status::rejected);
    CHECK(refused.error_type == "bad_arguments");
  }
  SECTION("an option chunk that is not a bool is malformed") {
    msg.options["chunk"] = 1;
    auto refused = outcome_of(msg);
    CHECK(refused.status == outcome_status::rejected);
    CHECK(refused.error_type == "malformed_envelope");
  }
}

TEST_CASE("a handler that replaces itself sends a replace envelope with the canvas", "[unit][actors][worker]") {
  task_registry tasks;
  tasks.add("split", [](task_context& ctx, std::int64_t n) -> task_result<value> {
    std::vector<canvas> members;
    for (std::int64_t i = 0; i < n; ++i) {
      members.emplace_back(signature("identity", {i}));
    }
    return ctx.replace(group(std::move(members)));
  });
  canvas_limits limits;
  auto run = run_task_message(encode(task_message("split", {2})), tasks, {}, limits);
  auto wire = decode(encode(run.outcome));
  REQUIRE(wire);
  CHECK(wire->type == envelope_type::replace);
  CHECK(wire->node == 3);
  CHECK(wire->attempt == 2);
  CHECK(to_json(wire->payload) == to_json(group(signature("identity", {0}), signature("identity", {1}))));

  SECTION("a canvas beyond max_result_bytes is rejected as payload_too_large") {
    limits.max_result_bytes = 16;
    auto big = run_task_message(encode(task_message("split", {50})), tasks, {}, limits);
    CHECK(big.outcome.type == envelope_type::outcome);
    CHECK(big.outcome.status == outcome_status::rejected);
    CHECK(big.outcome.error_type == "payload_too_large");
  }
  SECTION("a call of a chunk cannot replace itself") {
    auto msg = task_message("split", {});
    value::array calls{value::array{1}};
    msg.args = value::array{};
    msg.args.emplace_back(calls);
    msg.options["chunk"] = true;
    auto chunk = run_task_message(encode(msg), tasks, {}, limits);
    CHECK(chunk.outcome.type == envelope_type::outcome);
    CHECK(chunk.outcome.status == outcome_status::failure);
    CHECK(chunk.outcome.error_type == "replace_in_chunk");
  }
}

TEST_CASE("an expired task is revoked without running", "[unit][actors][worker]") {
  auto msg = task_message("add", {1, 1});
  msg.options["expires_at_ms"] = now_epoch_ms() - 1000;
  auto out = outcome_of(msg);
  CHECK(out.status == outcome_status::rejected);
  CHECK(out.error_type == "revoked");
}

TEST_CASE("an attempt that overruns its time limit fails with time_limit_exceeded", "[unit][actors][worker]") {
  auto msg = task_message("slow");
  msg.options["time_limit_ms"] = 5;
  auto out = outcome_of(msg);
  CHECK(out.status == outcome_status::failure);
  CHECK(out.error_type == "time_limit_exceeded");
}

TEST_CASE("a refused message becomes a nodeless rejected outcome with its reason and original bytes, unread",
          "[unit][actors][worker][dlq]") {
  // A valid task message: the refusal must not run it nor take anything from it.
  auto original = encode(task_message("add", {value(std::int64_t{1}), value(std::int64_t{2})}));
  auto wire = decode(encode(poison_outcome(original, error{errc::bad_signature, "bad signature: no match"})));
  REQUIRE(wire);
  CHECK(wire->type == envelope_type::outcome);
  CHECK(wire->status == outcome_status::rejected);
  CHECK(wire->error_type == "bad_signature");
  CHECK(wire->error_message == "bad signature: no match");
  CHECK(wire->node == -1);
  CHECK(wire->workflow_id.empty());
  CHECK(wire->task.empty());
  REQUIRE(wire->payload.is_binary());
  const auto& bytes = wire->payload.as_binary().bytes;
  CHECK(std::string(bytes.begin(), bytes.end()) == original);
}

TEST_CASE("a task of a revoked workflow is rejected as revoked without running", "[unit][actors][worker]") {
  static const auto tasks = sample_tasks();
  run_hooks hooks;
  bool started = false;
  hooks.is_revoked = [](const std::string& wf, std::int32_t node) { return wf == "wf" && node == 3; };
  hooks.on_start = [&](const envelope&, const stop_source&) { started = true; };
  auto run = run_task_message(encode(task_message("add", {1, 2})), tasks, hooks);
  CHECK_FALSE(started);
  CHECK(run.outcome.status == outcome_status::rejected);
  CHECK(run.outcome.error_type == "revoked");
  CHECK(run.outcome.workflow_id == "wf");
  CHECK(run.outcome.node == 3);
  CHECK_FALSE(run.queue_wait);

  hooks.is_revoked = [](const std::string&, std::int32_t) { return false; };
  run = run_task_message(encode(task_message("add", {1, 2})), tasks, hooks);
  CHECK(started);
  CHECK(run.outcome.status == outcome_status::success);
}
