// Time limits of one attempt: the stop token a handler reads, the soft limit
// (the context reports cancellation, a cooperative handler ends with
// soft_time_limit_exceeded), and the hard limit (the runner stops waiting,
// the attempt fails with time_limit_exceeded, and the handler's thread is
// abandoned, counted, and replaced).

#include "support/wait_until.hpp"

#include "trellis/actors/handler_slot.hpp"
#include "trellis/actors/task_runner.hpp"
#include "trellis/clock.hpp"
#include "trellis/stop_token.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

envelope limited_message(std::string task, value::array args, std::optional<std::int64_t> hard_ms,
                         std::optional<std::int64_t> soft_ms) {
  envelope e;
  e.type = envelope_type::task;
  e.id = "wf:1:1";
  e.workflow_id = "wf";
  e.node = 1;
  e.attempt = 1;
  e.task = std::move(task);
  e.queue = "default";
  e.args = std::move(args);
  e.options["idempotency_key"] = "wf/1";
  if (hard_ms) {
    e.options["time_limit_ms"] = *hard_ms;
  }
  if (soft_ms) {
    e.options["soft_time_limit_ms"] = *soft_ms;
  }
  e.sent_at = now_epoch_ms();
  return e;
}

/// A gate a handler waits at until the test opens it; opening it is the
/// only way the handler returns.
struct gate {
  std::promise<void> open;
  std::shared_future<void> opened{open.get_future().share()};
};

}  // namespace

TEST_CASE("a default stop token never stops, and waits out its whole time", "[unit][time_limits]") {
  stop_token never;
  CHECK_FALSE(never.stop_requested());
  CHECK_FALSE(never.deadline());
  CHECK(never.wait_for(1ms));
}

TEST_CASE("a stop token stops at its deadline, and a wait ends there", "[unit][time_limits]") {
  auto start = steady::now();
  stop_source source{start + 50ms};
  auto token = source.token();
  REQUIRE(token.deadline());
  CHECK(*token.deadline() == start + 50ms);
  CHECK_FALSE(token.wait_for(30s));
  CHECK(steady::now() - start < 10s);
  CHECK(steady::now() >= start + 50ms);
  CHECK(token.stop_requested());
}

TEST_CASE("a requested stop ends a wait at once and stays requested", "[unit][time_limits]") {
  stop_source source;
  auto token = source.token();
  CHECK_FALSE(token.stop_requested());
  std::thread waiter;
  std::atomic<bool> cut_short{false};
  std::promise<void> waiting;
  waiter = std::thread{[&] {
    waiting.set_value();
    cut_short = !token.wait_for(60s);
  }};
  waiting.get_future().wait();
  source.request_stop();  // whether the wait has begun or not, it ends now
  waiter.join();
  CHECK(cut_short);
  CHECK(token.stop_requested());
}

TEST_CASE("at the soft limit a cooperative handler wakes early and fails with soft_time_limit_exceeded",
          "[unit][time_limits]") {
  task_registry tasks;
  tasks.add("nap", {"ms"}, [](task_context& ctx, std::int64_t ms) {
    ctx.sleep_for(std::chrono::milliseconds{ms});
    return ms;
  });
  auto start = steady::now();
  auto run = run_task_message(encode(limited_message("nap", {30'000}, std::nullopt, 100)), tasks);
  CHECK(steady::now() - start < 10s);
  CHECK(run.outcome.status == outcome_status::failure);
  CHECK(run.outcome.error_type == "soft_time_limit_exceeded");
  CHECK(run.outcome.duration_us >= 100'000);
}

TEST_CASE("a handler sees its deadline and cancellation, and may catch the soft limit and return",
          "[unit][time_limits]") {
  task_registry tasks;
  tasks.add("careful", [](task_context& ctx) -> std::int64_t {
    REQUIRE(ctx.deadline());
    CHECK_FALSE(ctx.cancelled());
    std::int64_t steps = 0;
    try {
      for (;;) {
        ctx.throw_if_cancelled();
        ctx.stop_token().wait_for(1ms);
        ++steps;
      }
    } catch (const soft_time_limit_exceeded&) {
      CHECK(ctx.cancelled());
      CHECK(steady::now() >= *ctx.deadline());
    }
    return steps > 0 ? 1 : 0;
  });
  auto run = run_task_message(encode(limited_message("careful", {}, std::nullopt, 50)), tasks);
  CHECK(run.outcome.status == outcome_status::success);
  CHECK(run.outcome.payload == value(std::int64_t{1}));
}

TEST_CASE("a handler that returns before its limits succeeds, and one without limits has no deadline",
          "[unit][time_limits]") {
  task_registry tasks;
  tasks.add("quick", [](task_context& ctx) { return ctx.deadline() ? 1 : 0; });
  handler_slot slot{std::make_shared<abandoned_handlers>(4, nullptr)};
  run_hooks hooks;
  hooks.run_limited = [&](const envelope& t, std::function<void()> job, steady::time_point deadline) {
    return slot.run(std::move(job), deadline, t.queue, t.task);
  };
  auto limited = run_task_message(encode(limited_message("quick", {}, 10'000, 5'000)), tasks, hooks);
  CHECK(limited.outcome.status == outcome_status::success);
  CHECK(limited.outcome.payload == value(std::int64_t{1}));
  auto free = run_task_message(encode(limited_message("quick", {}, std::nullopt, std::nullopt)), tasks, hooks);
  CHECK(free.outcome.status == outcome_status::success);
  CHECK(free.outcome.payload == value(std::int64_t{0}));
}

TEST_CASE("at the hard limit the attempt fails at once, its thread is abandoned and replaced, its late result dropped",
          "[unit][time_limits]") {
  auto hung = std::make_shared<gate>();
  auto saw_stop = std::make_shared<std::atomic<bool>>(false);
  task_registry tasks;
  tasks.add("hang", [hung, saw_stop](task_context& ctx) {
    hung->opened.wait();
    *saw_stop = ctx.cancelled();
    return 42;
  });
  tasks.add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto stats = std::make_shared<metrics>();
  auto abandoned = std::make_shared<abandoned_handlers>(4, stats);
  handler_slot slot{abandoned};
  run_hooks hooks;
  hooks.run_limited = [&](const envelope& t, std::function<void()> job, steady::time_point deadline) {
    return slot.run(std::move(job), deadline, t.queue, t.task);
  };

  auto start = steady::now();
  auto run = run_task_message(encode(limited_message("hang", {}, 200, std::nullopt)), tasks, hooks);
  auto took = steady::now() - start;
  CHECK(took >= 200ms);
  CHECK(took < 400ms);  // the limit, plus the 200 ms the outcome may take at most
  CHECK(run.outcome.status == outcome_status::failure);
  CHECK(run.outcome.error_type == "time_limit_exceeded");
  CHECK(run.outcome.payload.is_nil());
  CHECK(abandoned->count() == 1);
  CHECK(stats->gauge_value(gauge::abandoned_handlers) == 1);
  CHECK(stats->total(counter::abandoned_handlers) == 1);

  // The slot runs the next limited task on a new thread while the old one hangs.
  auto next = run_task_message(encode(limited_message("add", {1, 2}, 10'000, std::nullopt)), tasks, hooks);
  CHECK(next.outcome.status == outcome_status::success);
  CHECK(next.outcome.payload == value(std::int64_t{3}));

  hung->open.set_value();
  REQUIRE(test::wait_until([&] { return abandoned->count() == 0; }, 10s, "the abandoned handler to return"));
  CHECK(*saw_stop);  // its stop token was requested when it was given up
  CHECK(stats->gauge_value(gauge::abandoned_handlers) == 0);
  CHECK_THAT(stats->prometheus_text(), Catch::Contains("trellis_abandoned_handlers_running 0\n"));
  CHECK_THAT(stats->prometheus_text(),
             Catch::Contains("trellis_abandoned_handlers_total{queue=\"default\",task=\"hang\"} 1\n"));
}

TEST_CASE("the bound of abandoned handlers holds the pool until one returns, or the drain", "[unit][time_limits]") {
  abandoned_handlers abandoned{2, nullptr};
  std::atomic<bool> stopping{false};
  abandoned.add("q", "t");
  CHECK_FALSE(abandoned.at_bound());
  abandoned.add("q", "t");
  CHECK(abandoned.at_bound());

  std::promise<bool> waited;
  std::thread waiter{[&] { waited.set_value(abandoned.wait_below_bound(stopping)); }};
  abandoned.returned();
  auto below = waited.get_future();
  REQUIRE(below.wait_for(10s) == std::future_status::ready);
  CHECK(below.get());
  waiter.join();

  abandoned.add("q", "t");
  REQUIRE(abandoned.at_bound());
  std::promise<bool> drained;
  std::thread drain_waiter{[&] { drained.set_value(abandoned.wait_below_bound(stopping)); }};
  stopping = true;
  abandoned.wake();
  auto result = drained.get_future();
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK_FALSE(result.get());
  drain_waiter.join();
}
