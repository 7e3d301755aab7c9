// The worker's progress coalescing: a handler that reports in a tight loop
// sends at most one event per interval per attempt, the latest; the last
// report goes out before the outcome (close); nothing of an attempt is sent
// after it closed; a refused publish is tried again.

#include "support/envelopes.hpp"
#include "support/wait_until.hpp"

#include "trellis/actors/progress_reporter.hpp"
#include "trellis/envelope.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// Records the events published, in order; refuses while `refusing`.
class event_recorder final : public transport {
 public:
  expected<void> publish_tasks(const std::string&, std::vector<outgoing_task>&) override { return {}; }
  std::vector<delivery> fetch_tasks(const std::vector<std::string>&, std::size_t, std::chrono::milliseconds) override {
    return {};
  }
  void ack_task(const delivery&) override {}
  expected<void> publish_events(std::vector<outgoing_event> messages) override {
    std::lock_guard<std::mutex> guard{mutex_};
    if (refusing) {
      return error{errc::broker_unavailable, "away (test)"};
    }
    ++calls_;
    // Called on the reporter's thread too, where Catch's assertions may not
    // run: an event that does not decode is kept as a default envelope,
    // which every test's checks then fail on.
    for (auto& m : messages) {
      auto e = decode(m.bytes);
      events_.push_back(e ? std::move(*e) : envelope{});
    }
    return {};
  }
  void consume_events(std::function<void(std::vector<delivery>)>) override {}
  void ack_event(const delivery&) override {}
  void close() override {}

  std::vector<envelope> events() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return events_;
  }
  std::size_t calls() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return calls_;
  }
  bool refusing = false;

 private:
  mutable std::mutex mutex_;
  std::vector<envelope> events_;
  std::size_t calls_ = 0;
};

envelope running_task(std::int32_t node) {
  auto task = test::task_envelope("wf-1:" + std::to_string(node) + ":1", {"wf-1", node, 1, "import"}, "default");
  return task;
}

task_progress at(std::int64_t done) {
  task_progress p;
  p.done = done;
  p.total = 1000;
  return p;
}

}  // namespace

TEST_CASE("reports between flushes coalesce into the latest, one event per attempt", "[unit][progress]") {
  auto bus = std::make_shared<event_recorder>();
  auto reporter = std::make_shared<progress_reporter>(bus, 1);
  auto a = reporter->open(running_task(1));
  auto b = reporter->open(running_task(2));
  for (int i = 1; i <= 1000; ++i) {
    a->report(at(i));
  }
  b->report(at(5));
  CHECK(reporter->flush() == 2);
  CHECK(reporter->flush() == 0);  // nothing new since
  auto events = bus->events();
  REQUIRE(events.size() == 2);
  CHECK(bus->calls() == 1);  // both in one publish
  for (const auto& e : events) {
    CHECK(e.type == envelope_type::progress);
    CHECK(e.attempt == 1);
    CHECK(e.progress.done == (e.node == 1 ? 1000 : 5));
  }
  CHECK(events[0].id != events[1].id);
}

TEST_CASE("close hands back the unsent last report and drops later ones", "[unit][progress]") {
  auto bus = std::make_shared<event_recorder>();
  auto reporter = std::make_shared<progress_reporter>(bus, 1);
  auto sink = reporter->open(running_task(3));
  sink->report(at(1));
  CHECK(reporter->flush() == 1);
  CHECK_FALSE(reporter->close(sink));  // nothing new: nothing to send

  sink = reporter->open(running_task(4));
  sink->report(at(7));
  auto last = reporter->close(sink);
  REQUIRE(last);
  auto e = decode(last->bytes);
  REQUIRE(e);
  CHECK(e->node == 4);
  CHECK(e->progress.done == 7);
  // An abandoned handler that reports on: dropped.
  sink->report(at(8));
  CHECK(reporter->flush() == 0);
  CHECK(bus->events().size() == 1);
}

TEST_CASE("an attempt that never reported costs a flush nothing and sends nothing", "[unit][progress]") {
  auto bus = std::make_shared<event_recorder>();
  auto reporter = std::make_shared<progress_reporter>(bus, 1);
  auto quiet = reporter->open(running_task(8));
  CHECK(reporter->flush() == 0);
  CHECK_FALSE(reporter->close(quiet));
  quiet->report(at(1));  // after its close: dropped, never registered
  CHECK(reporter->flush() == 0);
  CHECK(bus->calls() == 0);
}

TEST_CASE("a report the broker refused is sent at the next flush", "[unit][progress]") {
  auto bus = std::make_shared<event_recorder>();
  auto reporter = std::make_shared<progress_reporter>(bus, 1);
  auto sink = reporter->open(running_task(5));
  sink->report(at(1));
  bus->refusing = true;
  CHECK(reporter->flush() == 0);
  bus->refusing = false;
  CHECK(reporter->flush() == 1);
  REQUIRE(bus->events().size() == 1);
  CHECK(bus->events()[0].progress.done == 1);
}

TEST_CASE("the reporter thread bounds the event rate of a tight loop", "[unit][progress]") {
  auto bus = std::make_shared<event_recorder>();
  auto reporter = std::make_shared<progress_reporter>(bus, 1);
  reporter->start(100ms);
  auto sink = reporter->open(running_task(6));
  auto started = std::chrono::steady_clock::now();
  std::int64_t reports = 0;
  while (std::chrono::steady_clock::now() - started < 500ms) {
    sink->report(at(++reports));
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  // The loop keeps reporting while the thread flushes: the latest goes out.
  REQUIRE(test::wait_until(
      [&] { return !bus->events().empty() && bus->events().back().progress.done == reports; }, test::max_test_wait,
      "the latest report to be sent"));
  reporter->stop();
  auto sent = bus->events().size();
  // One event per tick at most (plus the one after the loop): far fewer than
  // the reports, however loaded the machine.
  auto ticks = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() / 100;
  CHECK(sent <= static_cast<std::size_t>(ticks) + 3);
  CHECK(static_cast<std::int64_t>(sent) < reports);
}
