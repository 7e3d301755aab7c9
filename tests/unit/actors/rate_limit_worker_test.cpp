// Rate limits in the worker: a task with a `rate_limit` starts only once the
// transport's gate gave it a slot; while the gate cannot be reached the task
// waits (it never runs without a slot); a drain during the wait hands it
// back unrun and does not wait for the slot; what the thread ran before is
// reported before it waits. And the runner reads the option strictly.

#include "support/envelopes.hpp"
#include "support/forwarding_transport.hpp"
#include "support/wait_until.hpp"

#include "trellis/actors/task_runner.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/envelope.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// In-process queues whose gate refuses the first `refusals` reservations
/// (broker_unavailable) and then gives each one `delay` from now, and which
/// records every reservation, release, published outcome and handler start.
class gated_broker final : public test::forwarding_transport {
 public:
  gated_broker(int refusals, std::chrono::microseconds delay) : refusals_(refusals), delay_(delay) {}

  expected<std::int64_t> reserve_start(const std::string& task, std::int64_t interval_us) override {
    (void)interval_us;
    std::lock_guard<std::mutex> guard{mutex_};
    if (refusals_ > 0) {
      --refusals_;
      log_.push_back("refused " + task);
      return error{errc::broker_unavailable, "no bucket (test)"};
    }
    log_.push_back("reserved " + task);
    return now_epoch_us() + delay_.count();
  }
  void release_task(const delivery& d) override {
    record("released");
    inner.release_task(d);
  }
  expected<void> publish_events(std::vector<outgoing_event> messages) override {
    for (auto& m : messages) {
      auto e = decode(m.bytes);
      record("outcome " + (e ? e->task : std::string{"?"}));
    }
    return {};
  }
  void record(std::string what) {
    std::lock_guard<std::mutex> guard{mutex_};
    log_.push_back(std::move(what));
  }
  std::vector<std::string> log() {
    std::lock_guard<std::mutex> guard{mutex_};
    return log_;
  }
  bool logged(const std::string& what) {
    auto l = log();
    return std::find(l.begin(), l.end(), what) != l.end();
  }

 private:
  std::mutex mutex_;
  int refusals_;
  std::chrono::microseconds delay_;
  std::vector<std::string> log_;
};

std::string task_message(const std::string& id, std::int32_t node, const std::string& task,
                         std::optional<std::string> rate) {
  auto e = test::task_envelope(id, {"wf", node, 1, task}, "default");
  if (rate) {
    e.options["rate_limit"] = *rate;
  }
  return encode(e);
}

/// A worker pool of one thread fetching `batch` messages at a time, with
/// the handlers `quick` and `limited` (each records its start on `bus`).
class one_worker {
 public:
  one_worker(std::shared_ptr<gated_broker> bus, std::size_t batch) : bus_(std::move(bus)) {
    task_registry tasks;
    auto* b = bus_.get();
    tasks.add("quick", [b](task_context&) { b->record("ran quick"); });
    tasks.add("limited", [b](task_context&) { b->record("ran limited"); });
    worker_pool_config cfg;
    cfg.bus = bus_;
    cfg.stats = stats;
    cfg.tasks = std::make_shared<const task_registry>(std::move(tasks));
    cfg.concurrency = 1;
    cfg.fetch_batch = batch;
    sys_ = std::make_unique<caf::actor_system>(caf_cfg_);
    pool_ = spawn_worker_pool(*sys_, cfg);
  }
  ~one_worker() { stop(); }

  /// Drains the pool and stops it; returns how long the drain took.
  std::chrono::steady_clock::duration stop() {
    auto started = std::chrono::steady_clock::now();
    if (pool_) {
      {
        caf::scoped_actor self{*sys_};
        self->request(pool_, caf::infinite, drain_atom::value).receive([](bool) {}, [](caf::error&) {});
        self->send_exit(pool_, caf::exit_reason::user_shutdown);
      }
      pool_ = nullptr;  // a detached actor's thread ends only once no handle is left
      bus_->close();
      caf::logger::set_current_actor_system(nullptr);
      sys_.reset();
    }
    return std::chrono::steady_clock::now() - started;
  }

  std::shared_ptr<metrics> stats = std::make_shared<metrics>();

 private:
  std::shared_ptr<gated_broker> bus_;
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  worker_pool_actor pool_;
};

void publish(gated_broker& bus, std::vector<std::string> messages) {
  std::vector<outgoing_task> out;
  for (auto& m : messages) {
    out.push_back({"id", std::move(m), 0, {}, false, ""});
  }
  REQUIRE(bus.publish_tasks("default", out));
}

}  // namespace

TEST_CASE("a rate-limited task waits while its slot cannot be reserved and starts only once it has one",
          "[unit][actors][worker][rate-limit]") {
  auto bus = std::make_shared<gated_broker>(3, 0us);
  publish(*bus, {task_message("wf:0:1", 0, "limited", "20/s")});
  one_worker worker{bus, 1};
  REQUIRE(test::wait_until([&] { return bus->logged("outcome limited"); }, test::max_test_wait,
                           "the limited task's outcome"));
  worker.stop();
  auto log = bus->log();
  INFO("log: " << Catch::Detail::stringify(log));
  REQUIRE(log.size() == 6);
  for (int i = 0; i < 3; ++i) {
    CHECK(log[i] == "refused limited");
  }
  CHECK(log[3] == "reserved limited");
  CHECK(log[4] == "ran limited");
  CHECK(worker.stats->total(counter::rate_limit_gate_errors) == 3);
}

TEST_CASE(
    "a drain while a task waits for a far-off slot hands it back unrun at once, after reporting what ran before it",
    "[unit][actors][worker][rate-limit]") {
  auto bus = std::make_shared<gated_broker>(0, std::chrono::hours{1});
  // Fetched together: the quick task runs, then the limited one waits an hour.
  publish(*bus, {task_message("wf:0:1", 0, "quick", std::nullopt), task_message("wf:1:1", 1, "limited", "1/h")});
  one_worker worker{bus, 2};
  REQUIRE(test::wait_until([&] { return bus->logged("reserved limited"); }, test::max_test_wait,
                           "the limited task's reservation"));
  // The quick task's outcome does not wait behind the hour.
  REQUIRE(test::wait_until([&] { return bus->logged("outcome quick"); }, test::max_test_wait,
                           "the quick task's outcome"));
  auto took = worker.stop();
  CHECK(took < 5s);
  auto log = bus->log();
  INFO("log: " << Catch::Detail::stringify(log));
  CHECK(bus->logged("released"));
  CHECK_FALSE(bus->logged("ran limited"));
  CHECK_FALSE(bus->logged("outcome limited"));
}

TEST_CASE("the runner refuses a task message whose rate_limit is not a rate, and paces only tasks it may run",
          "[unit][actors][rate-limit]") {
  task_registry tasks;
  tasks.add("noop", [](task_context&) {});
  int paced = 0;
  run_hooks hooks;
  hooks.pace = [&](const envelope&, const rate_limit_spec& rate) {
    ++paced;
    CHECK(rate.interval_us() == 50'000);
    return true;
  };
  SECTION("a malformed rate is malformed_envelope, never run unthrottled") {
    for (const char* bad : {"0/s", "20/x", "1.5/s"}) {
      auto run = run_task_message(task_message("wf:0:1", 0, "noop", std::string{bad}), tasks, hooks);
      CHECK(run.outcome.status == outcome_status::rejected);
      CHECK(run.outcome.error_type == "malformed_envelope");
      CHECK_THAT(run.outcome.error_message, Catch::Contains("rate_limit"));
    }
    CHECK(paced == 0);
  }
  SECTION("a revoked task takes no slot") {
    hooks.is_revoked = [](const std::string&, std::int32_t) { return true; };
    auto run = run_task_message(task_message("wf:0:1", 0, "noop", std::string{"20/s"}), tasks, hooks);
    CHECK(run.outcome.error_type == "revoked");
    CHECK(paced == 0);
  }
  SECTION("a task that may run is paced once, then runs") {
    auto run = run_task_message(task_message("wf:0:1", 0, "noop", std::string{"20/s"}), tasks, hooks);
    CHECK(run.outcome.status == outcome_status::success);
    CHECK(paced == 1);
  }
  SECTION("a message without a rate takes the worker's registration default, for a dispatcher without the task") {
    task_registry limited;
    limited.add("noop", [](task_context&) {}).rate_limit("20/s");
    auto run = run_task_message(task_message("wf:0:1", 0, "noop", std::nullopt), limited, hooks);
    CHECK(run.outcome.status == outcome_status::success);
    CHECK(paced == 1);
    // A rate in the message (the call's own, or the dispatcher's default) wins.
    hooks.pace = [&](const envelope&, const rate_limit_spec& rate) {
      ++paced;
      CHECK(rate.interval_us() == 1'000);
      return true;
    };
    run = run_task_message(task_message("wf:0:1", 0, "noop", std::string{"1000/s"}), limited, hooks);
    CHECK(paced == 2);
  }
  SECTION("a task whose pacing was cut short by a stop is handed back, not reported") {
    hooks.pace = [](const envelope&, const rate_limit_spec&) { return false; };
    auto run = run_task_message(task_message("wf:0:1", 0, "noop", std::string{"20/s"}), tasks, hooks);
    CHECK(run.handed_back);
  }
}
