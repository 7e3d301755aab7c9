// The worker pool on a real actor system, over a transport that refuses
// outcome events for a while, as a broker does while it restarts or elects a
// stream leader: the outcome is kept and published again, the task is marked
// in progress meanwhile, and it is acked only once its outcome is out.

#include "support/envelopes.hpp"
#include "support/wait_until.hpp"

#include "trellis/actors/worker_pool.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/inproc_transport.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// In-process queues whose event side refuses the first `refusals` publishes
/// with broker_unavailable, and which records, in order, every publish
/// attempt, touch and ack the worker makes. Its events carry at most
/// `max_event` bytes.
class refusing_broker final : public transport {
 public:
  explicit refusing_broker(int refusals, std::size_t max_event = SIZE_MAX)
      : refusals_(refusals), max_event_(max_event) {}

  std::size_t max_message_bytes() const override { return max_event_; }

  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override {
    return queues_.publish_tasks(queue, messages);
  }
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait) override {
    auto batch = queues_.fetch_tasks(queues, max, wait);
    fetched_ += batch.size();
    return batch;
  }
  /// Task messages handed to the worker so far.
  std::size_t fetched() const { return fetched_.load(); }
  void ack_task(const delivery& d) override {
    record("ack " + std::to_string(d.token));
    queues_.ack_task(d);
  }
  void touch_task(const delivery& d) override { record("touch " + std::to_string(d.token)); }
  expected<void> publish_events(std::vector<outgoing_event> messages) override {
    std::lock_guard<std::mutex> guard{mutex_};
    if (refusals_ > 0) {
      --refusals_;
      log_.push_back("refused");
      return error{errc::broker_unavailable, "no stream leader (test)"};
    }
    log_.push_back("published");
    for (auto& m : messages) {
      events_.push_back(std::move(m.bytes));
    }
    return {};
  }
  void consume_events(std::function<void(std::vector<delivery>)>) override {}
  void ack_event(const delivery&) override {}
  void close() override { queues_.close(); }

  std::vector<std::string> log() {
    std::lock_guard<std::mutex> guard{mutex_};
    return log_;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> guard{mutex_};
    return events_;
  }

 private:
  void record(std::string what) {
    std::lock_guard<std::mutex> guard{mutex_};
    log_.push_back(std::move(what));
  }

  inproc_transport queues_;
  std::atomic<std::size_t> fetched_{0};
  std::mutex mutex_;
  int refusals_;
  std::size_t max_event_;
  std::vector<std::string> log_;
  std::vector<std::string> events_;
};

std::string task_message(const std::string& task, value::array args) {
  auto e = test::task_envelope("wf:0:1", {"wf", 0, 1, task}, "default");
  e.args = std::move(args);
  return encode(e);
}

std::string add_task() { return task_message("add", {2, 3}); }

/// Runs a worker pool of `threads` threads, each fetching one message at a
/// time, with the handlers `add` and `text_of_size` (or those `tasks`
/// holds) over `bus` until `done` holds (or the test's bound passes), then
/// drains and stops it. Returns whether `done` came true.
template <class Predicate>
bool run_worker_until(const std::shared_ptr<transport>& bus, Predicate done, const char* what, std::size_t threads = 1,
                      std::optional<task_registry> tasks = std::nullopt) {
  if (!tasks) {
    tasks.emplace();
    tasks->add("add", [](task_context&, std::int64_t x, std::int64_t y) { return x + y; });
    tasks->add("text_of_size",
               [](task_context&, std::int64_t n) { return std::string(static_cast<std::size_t>(n), 'x'); });
  }
  worker_pool_config cfg;
  cfg.bus = bus;
  cfg.stats = std::make_shared<metrics>();
  cfg.tasks = std::make_shared<const task_registry>(std::move(*tasks));
  cfg.concurrency = threads;
  cfg.fetch_batch = 1;
  caf::actor_system_config caf_cfg;
  auto sys = std::make_unique<caf::actor_system>(caf_cfg);
  auto pool = spawn_worker_pool(*sys, cfg);
  bool happened = test::wait_until(done, test::max_test_wait, what);
  {
    caf::scoped_actor self{*sys};
    self->request(pool, caf::infinite, drain_atom::value).receive([](bool) {}, [](caf::error&) {});
    self->send_exit(pool, caf::exit_reason::user_shutdown);
  }
  pool = nullptr;  // a detached actor's thread ends only once no handle is left
  bus->close();
  caf::logger::set_current_actor_system(nullptr);
  sys.reset();
  return happened;
}

/// Publishes the task message `bytes` on `bus`, runs the worker until it
/// acks it, and returns the broker's log.
std::vector<std::string> run_until_acked(const std::shared_ptr<refusing_broker>& bus, std::string bytes) {
  std::vector<outgoing_task> task{{"wf:0:1", std::move(bytes), 0, {}, false, ""}};
  REQUIRE(bus->publish_tasks("default", task));
  bool acked = run_worker_until(
      bus,
      [&] {
        auto log = bus->log();
        return !log.empty() && log.back().rfind("ack ", 0) == 0;
      },
      "the task to be acked");
  REQUIRE(acked);
  return bus->log();
}

/// In-process queues whose event side refuses every publish with
/// payload_too_large, counting attempts and acks.
class oversize_broker final : public transport {
 public:
  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override {
    return queues_.publish_tasks(queue, messages);
  }
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait) override {
    return queues_.fetch_tasks(queues, max, wait);
  }
  void ack_task(const delivery&) override { ++acks; }
  expected<void> publish_events(std::vector<outgoing_event>) override {
    ++attempts;
    return error{errc::payload_too_large, "outcome too large (test)"};
  }
  void consume_events(std::function<void(std::vector<delivery>)>) override {}
  void ack_event(const delivery&) override {}
  void close() override { queues_.close(); }

  std::atomic<int> acks{0};
  std::atomic<int> attempts{0};

 private:
  inproc_transport queues_;
};

}  // namespace

TEST_CASE(
    "a worker keeps an outcome the broker refuses, marks its task in progress meanwhile and acks it once the "
    "outcome is published",
    "[unit][actors][worker]") {
  auto bus = std::make_shared<refusing_broker>(3);
  auto log = run_until_acked(bus, add_task());
  // Three refusals, each followed by a touch; then the outcome goes out once
  // and only then is the task acked.
  INFO("log: " << Catch::Detail::stringify(log));
  REQUIRE(log.size() == 8);
  for (std::size_t i = 0; i < 6; i += 2) {
    CHECK(log[i] == "refused");
    CHECK(log[i + 1].rfind("touch ", 0) == 0);
  }
  CHECK(log[6] == "published");
  CHECK(log[7].rfind("ack ", 0) == 0);
  auto events = bus->events();
  REQUIRE(events.size() == 1);
  auto outcome = decode(events[0]);
  REQUIRE(outcome);
  CHECK(outcome->status == outcome_status::success);
  CHECK(outcome->payload == value(5));
}

TEST_CASE(
    "a worker does not wait out an outcome refused for another reason than an absent broker, and leaves its "
    "task unacked",
    "[unit][actors][worker]") {
  // payload_too_large will not pass on a second try: the task stays unacked,
  // so a broker delivers it again (and, past MaxDeliver, reports it exhausted).
  auto bus = std::make_shared<oversize_broker>();
  std::vector<outgoing_task> task{{"wf:0:1", add_task(), 0, {}, false, ""}};
  REQUIRE(bus->publish_tasks("default", task));
  bool offered = run_worker_until(
      bus, [&] { return bus->attempts.load() >= 1; }, "the outcome to be offered");
  REQUIRE(offered);
  CHECK(bus->attempts.load() == 1);
  CHECK(bus->acks.load() == 0);
}

TEST_CASE(
    "an outcome larger than the transport carries is reported as a payload_too_large rejection, once, and its "
    "task acked",
    "[unit][actors][worker]") {
  auto bus = std::make_shared<refusing_broker>(0, 1000);
  auto log = run_until_acked(bus, task_message("text_of_size", {2000}));
  INFO("log: " << Catch::Detail::stringify(log));
  REQUIRE(log.size() == 2);
  CHECK(log[0] == "published");
  auto events = bus->events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].size() <= 1000);
  auto outcome = decode(events[0]);
  REQUIRE(outcome);
  CHECK(outcome->status == outcome_status::rejected);
  CHECK(outcome->error_type == "payload_too_large");
  CHECK(outcome->payload.is_nil());
  CHECK_THAT(outcome->error_message, Catch::Contains("text_of_size") && Catch::Contains("beyond the 1000 bytes"));
  CHECK(outcome->workflow_id == "wf");
  CHECK(outcome->node == 0);
  CHECK(outcome->attempt == 1);
}

TEST_CASE("two deliveries of one task attempt run its handler once, even on two threads at once, and both are acked",
          "[unit][actors][worker]") {
  // Two copies of the message of attempt 1 of node 0, as a restore that
  // publishes queued work again makes them: the second is fetched while the
  // first one's handler runs, so it meets the first one's claim.
  auto bus = std::make_shared<refusing_broker>(0);
  auto copy = task_message("hold_add", {2, 3});
  std::vector<outgoing_task> copies{{"wf:0:1", copy, 0, {}, false, ""}, {"wf:0:1", copy, 0, {}, false, ""}};
  REQUIRE(bus->publish_tasks("default", copies));
  std::atomic<int> runs{0};
  task_registry tasks;
  tasks.add("hold_add", [&](task_context&, std::int64_t x, std::int64_t y) {
    ++runs;
    // Returns once the other thread holds the second copy (Catch2 must not
    // be used off the test's thread, so a plain bounded poll).
    auto deadline = std::chrono::steady_clock::now() + test::max_test_wait;
    while (bus->fetched() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return x + y;
  });
  auto acks = [&] {
    auto log = bus->log();
    return std::count_if(log.begin(), log.end(), [](const std::string& e) { return e.rfind("ack ", 0) == 0; });
  };
  bool both_acked = run_worker_until(
      bus, [&] { return acks() == 2; }, "both copies to be acked", 2, std::move(tasks));
  INFO("log: " << Catch::Detail::stringify(bus->log()));
  REQUIRE(both_acked);
  CHECK(bus->fetched() == 2);
  CHECK(runs.load() == 1);
  // One outcome: the copy that did not run reports nothing.
  auto events = bus->events();
  REQUIRE(events.size() == 1);
  auto outcome = decode(events[0]);
  REQUIRE(outcome);
  CHECK(outcome->status == outcome_status::success);
  CHECK(outcome->payload == value(5));
}
