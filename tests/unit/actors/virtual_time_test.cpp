// The dispatcher's and the supervisor's timers on virtual time: CAF's test
// coordinator runs the actors on this thread and delivers a delayed message
// only when the test moves its clock, and the actors read the time through
// the same clock (support/virtual_time.hpp). So a countdown, a retry's wait
// and a restart's backoff are checked to the millisecond, without waiting.

#include "support/virtual_time.hpp"
#include "support/envelopes.hpp"
#include "support/temp_dir.hpp"

#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/inproc_transport.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// One dispatcher under its supervisor on virtual time, with the in-process
/// transport and no worker pool: the test stands in for the workers.
class supervised_dispatcher {
 public:
  explicit supervised_dispatcher(std::shared_ptr<sqlite_store> store = sqlite_store::open(":memory:"))
      : store_(std::move(store)) {
    supervisor_config cfg;
    cfg.clock = time.clock;
    cfg.dispatcher.clock = time.clock;
    cfg.dispatcher.store = store_;
    cfg.dispatcher.bus = bus_;
    cfg.dispatcher.stats = std::make_shared<metrics>();
    cfg.dispatcher.jitter_seed = 1;
    cfg.dispatcher.on_store_failure = [this](const error& e) { store_failures.push_back(e); };
    supervisor_ = spawn_supervisor(time.system(), std::move(cfg));
    time.run();
  }

  ~supervised_dispatcher() {
    time.ask<bool>(supervisor_, drain_atom::value);  // stops the children
    caf::anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
    time.run();
    bus_->close();
  }

  supervised_dispatcher(const supervised_dispatcher&) = delete;
  supervised_dispatcher& operator=(const supervised_dispatcher&) = delete;

  /// The supervisor's current dispatcher (the dead one until it restarts one).
  dispatcher_actor dispatcher() {
    auto d = time.ask<dispatcher_actor>(supervisor_, start_atom::value);
    REQUIRE(d);
    return *d;
  }

  /// Submits `flow` as workflow `id`; the dispatcher's answer.
  caf::expected<std::string> submit(const canvas& flow, const std::string& id) {
    envelope e;
    e.type = envelope_type::submit;
    e.workflow_id = id;
    e.id = id + ":submit";
    e.payload = to_value(flow);
    return time.ask<std::string>(dispatcher(), submit_atom::value, encode(e));
  }

  /// Task messages published so far and not taken yet, decoded.
  std::vector<envelope> take_tasks() {
    std::vector<envelope> out;
    for (auto& d : bus_->fetch_tasks({}, 1000, 0ms)) {
      auto e = decode(d.bytes);
      REQUIRE(e);
      out.push_back(*e);
    }
    return out;
  }

  /// Reports that `task` failed, as a worker would, and lets the dispatcher apply it.
  void report_failure(const envelope& task, const std::string& error_type = "flaky_error") {
    auto out = test::outcome_envelope(task.id + ":out", {task.workflow_id, task.node, task.attempt, task.task},
                                      outcome_status::failure, value{}, error_type, "failed this time");
    REQUIRE(bus_->publish_events({{0, encode(out)}}));
    time.run();
  }

  /// The stored row of node `node` of workflow `wf`.
  node_record row(const std::string& wf, std::int32_t node) {
    auto rows = store_->nodes_of(wf);
    REQUIRE(rows);
    for (auto& r : *rows) {
      if (r.node == node) {
        return r;
      }
    }
    FAIL("workflow " << wf << " has no row for node " << node);
    return {};
  }

  test::virtual_time time;
  /// What the dispatcher reported to on_store_failure, in order.
  std::vector<error> store_failures;

 private:
  std::shared_ptr<sqlite_store> store_;
  std::shared_ptr<inproc_transport> bus_ = std::make_shared<inproc_transport>();
  supervisor_actor supervisor_;
};

/// The epoch ms virtual time shows `after` from its start.
std::int64_t virtual_epoch_ms(std::chrono::milliseconds after) {
  return test::virtual_time::epoch_at_start + after.count();
}

/// Checks that workflow "wf-1", a single task "later" due 1500 ms after the
/// start, is stored as waiting with that due time (so a restart keeps it)
/// and publishes its first attempt at 1500 ms, not a millisecond before.
void check_first_attempt_at_1500ms(supervised_dispatcher& f) {
  CHECK(f.take_tasks().empty());
  auto waiting = f.row("wf-1", 0);
  CHECK(waiting.state == node_state::received);
  CHECK(waiting.due_at == virtual_epoch_ms(1500ms));

  CHECK(f.time.advance(1499ms) == 0);
  CHECK(f.take_tasks().empty());
  CHECK(f.time.advance(1ms) == 1);
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  CHECK(tasks[0].task == "later");
  CHECK(tasks[0].attempt == 1);
  CHECK(tasks[0].sent_at == virtual_epoch_ms(1500ms));
}

}  // namespace

TEST_CASE("a task's countdown publishes its first attempt when the countdown is over, not a millisecond before",
          "[unit][actors][dispatcher][virtual_time]") {
  supervised_dispatcher f;
  REQUIRE(f.submit(signature("later").countdown(1500ms), "wf-1"));
  check_first_attempt_at_1500ms(f);
  CHECK_FALSE(f.time.has_delayed_message());
}

TEST_CASE("an eta publishes the first attempt at that time, not a millisecond before; one in the past at once",
          "[unit][actors][dispatcher][virtual_time][eta]") {
  supervised_dispatcher f;
  auto at = [](std::chrono::milliseconds after) {
    return std::chrono::system_clock::time_point{std::chrono::milliseconds{virtual_epoch_ms(after)}};
  };
  REQUIRE(f.submit(signature("later").eta(at(1500ms)), "wf-1"));
  check_first_attempt_at_1500ms(f);

  // Now 1500 ms after the start: an eta of 1000 ms after it is past.
  REQUIRE(f.submit(signature("overdue").eta(at(1000ms)), "wf-2"));
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  CHECK(tasks[0].task == "overdue");
  CHECK(tasks[0].sent_at == virtual_epoch_ms(1500ms));
  CHECK_FALSE(f.time.has_delayed_message());
}

TEST_CASE("a failed attempt's retry is published when its wait is over, each wait twice the one before",
          "[unit][actors][dispatcher][virtual_time]") {
  supervised_dispatcher f;
  auto policy = retry_policy::exponential(3, 1000ms, 60000ms);
  policy.jitter = false;
  REQUIRE(f.submit(signature("flaky").retry(policy), "wf-1"));
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  auto elapsed = 0ms;
  for (auto wait : {1000ms, 2000ms, 4000ms}) {
    auto attempt = tasks[0].attempt;
    f.report_failure(tasks[0]);
    auto row = f.row("wf-1", 0);
    CHECK(row.state == node_state::retry);
    CHECK(row.due_at == virtual_epoch_ms(elapsed + wait));

    CHECK(f.time.advance(wait - 1ms) == 0);
    CHECK(f.take_tasks().empty());
    CHECK(f.time.advance(1ms) == 1);
    elapsed += wait;
    tasks = f.take_tasks();
    REQUIRE(tasks.size() == 1);
    CHECK(tasks[0].attempt == attempt + 1);
  }
  // The retries are used up: the next failure fails the step, with no wait.
  f.report_failure(tasks[0]);
  CHECK(f.row("wf-1", 0).state == node_state::failure);
  CHECK_FALSE(f.time.has_delayed_message());
}

TEST_CASE("a failure of a type the retry filters leave out fails the step at once, keeping its type",
          "[unit][actors][dispatcher][virtual_time][retry-filters]") {
  supervised_dispatcher f;
  auto policy = retry_policy::fixed(3, 1000ms).with_retry_on({"connection_error"}).with_dont_retry_on({"fatal"});
  REQUIRE(f.submit(signature("flaky").retry(policy), "wf-1"));
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);

  // A listed type is retried, within the count.
  f.report_failure(tasks[0], "connection_error");
  CHECK(f.row("wf-1", 0).state == node_state::retry);
  CHECK(f.time.advance(1000ms) == 1);
  tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  CHECK(tasks[0].attempt == 2);

  // Any other type is not: the step fails on this attempt, with no wait.
  f.report_failure(tasks[0], "std::runtime_error");
  auto row = f.row("wf-1", 0);
  CHECK(row.state == node_state::failure);
  CHECK(row.attempt == 2);
  CHECK(row.error.as_map().at("type") == value("std::runtime_error"));
  CHECK_FALSE(f.time.has_delayed_message());
  CHECK(f.take_tasks().empty());

  SECTION("dont_retry_on wins over an empty retry_on") {
    REQUIRE(f.submit(signature("flaky").retry(retry_policy::fixed(3, 1000ms).with_dont_retry_on({"fatal"})), "wf-2"));
    tasks = f.take_tasks();
    REQUIRE(tasks.size() == 1);
    f.report_failure(tasks[0], "fatal");
    CHECK(f.row("wf-2", 0).state == node_state::failure);
    CHECK(f.row("wf-2", 0).error.as_map().at("type") == value("fatal"));
    CHECK_FALSE(f.time.has_delayed_message());
  }
}

TEST_CASE(
    "the supervisor restarts a dying dispatcher after 100 ms doubling to 5 s, and after 100 ms again once one "
    "ran 30 s",
    "[unit][actors][supervisor][virtual_time]") {
  supervised_dispatcher f;
  auto restarts_after = [&](std::chrono::milliseconds wait) {
    auto dead = f.dispatcher();
    CHECK(f.time.kill(dead) == caf::exit_reason::kill);
    CHECK(f.time.advance(wait - 1ms) == 0);
    CHECK(f.dispatcher() == dead);
    CHECK(f.time.advance(1ms) == 1);
    CHECK(f.dispatcher() != dead);
  };
  for (auto wait : {100ms, 200ms, 400ms, 800ms, 1600ms, 3200ms, 5000ms, 5000ms}) {
    restarts_after(wait);
  }
  // A dispatcher that ran for longer than 30 s before it died was not
  // failing at once: the backoff starts over.
  CHECK(f.time.advance(30001ms) == 0);
  restarts_after(100ms);
  restarts_after(200ms);
}

TEST_CASE(
    "a dispatcher whose store refuses a write stops with the store's error as its exit reason, answers the "
    "submitter with it, and is not restarted",
    "[unit][actors][supervisor][virtual_time][store]") {
  test::temp_dir dir;
  auto path = dir.file("store.db");
  sqlite_store::open(path);  // created and closed: a read-only open needs the file
  store_options read_only;
  read_only.read_only = true;
  supervised_dispatcher f{sqlite_store::open(path, read_only)};
  auto dispatcher = f.dispatcher();

  auto answer = f.submit(signature("a"), "wf-1");
  REQUIRE_FALSE(answer);
  CHECK(answer.error().category() == trellis_error_category);
  CHECK(static_cast<errc>(answer.error().code()) == errc::store_failed);

  auto reason = f.time.stopped(dispatcher);
  CHECK(reason == answer.error());
  auto stopped_with = from_caf_error(reason, to_string(reason));
  CHECK(stopped_with.code() == errc::store_failed);
  CHECK_THAT(stopped_with.message(), Catch::StartsWith("store failure: ") && Catch::Contains("read-only"));
  REQUIRE(f.store_failures.size() == 1);
  CHECK(f.store_failures[0].message() == stopped_with.message());

  // No restart is pending, and none comes.
  CHECK_FALSE(f.time.has_delayed_message());
  CHECK(f.time.advance(60000ms) == 0);
  CHECK(f.dispatcher() == dispatcher);
}
