// The dispatcher and supervisor actors on a real actor system, with the
// in-process transport and a real SQLite store, and no worker pool: the test
// plays the worker, so it can deliver outcomes twice, late or malformed.

#include "support/dispatcher_harness.hpp"
#include "support/envelopes.hpp"
#include "support/forwarding_transport.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/partition.hpp"

#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// One dispatcher (under a supervisor) with the test standing in for workers.
using fixture = test::dispatcher_harness<>;

}  // namespace

TEST_CASE("a duplicate outcome event never advances a chain twice", "[unit][actors][dispatcher][once]") {
  fixture f{":memory:"};
  f.submit(chain(signature("a"), signature("b"), signature("c")));
  f.settle();
  auto first = f.take_tasks();
  REQUIRE(first.size() == 1);
  CHECK(first[0].task == "a");

  f.report_success(first[0], 1);
  f.report_success(first[0], 1);  // redelivered
  f.settle();
  auto second = f.take_tasks();
  REQUIRE(second.size() == 1);
  CHECK(second[0].task == "b");
  CHECK(second[0].args == value::array{1});
  CHECK(f.stats->total(counter::duplicates) == 1);
  CHECK(f.stats->total(counter::tasks_succeeded) == 1);
}

TEST_CASE("a late outcome after the workflow finished is counted as a duplicate and changes nothing",
          "[unit][actors][dispatcher][once]") {
  fixture f{":memory:"};
  f.submit(signature("only"));
  f.settle();
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  f.report_success(tasks[0], "done");
  f.settle();
  REQUIRE(f.finished().size() == 1);
  f.report_success(tasks[0], "again");
  f.settle();
  CHECK(f.finished().size() == 1);
  CHECK(f.finished()[0].result == value("done"));
  CHECK(f.stats->total(counter::duplicates) == 1);
}

TEST_CASE("undecodable and future-version events are dead-lettered and the dispatcher keeps going",
          "[unit][actors][dispatcher][dlq]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  {
    fixture f{db};
    envelope future;
    future.v = 2;
    future.type = envelope_type::outcome;
    future.id = "x";
    REQUIRE(f.bus->publish_events({{0, "\xc1 not msgpack"}, {0, encode(future)}}));
    f.settle();
    // Still alive and working.
    f.submit(signature("after"));
    f.settle();
    CHECK(f.take_tasks().size() == 1);
  }
  auto store = sqlite_store::open(db);
  auto letters = store->dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 2);
  std::vector<std::string> reasons{(*letters)[0].reason, (*letters)[1].reason};
  std::sort(reasons.begin(), reasons.end());
  CHECK(reasons == std::vector<std::string>{"malformed_envelope", "unsupported_version"});
  for (const auto& d : *letters) {
    CHECK_FALSE(d.envelope.empty());  // the original bytes are kept
  }
}

TEST_CASE("the supervisor restarts a dispatcher that dies, and the new one restores its workflows",
          "[unit][actors][supervisor][recovery]") {
  test::temp_dir dir;
  fixture f{dir.file("store.db")};
  auto id = f.submit(chain(signature("a"), signature("b")));
  f.settle();
  auto before = f.take_tasks();
  REQUIRE(before.size() == 1);
  auto old = f.dispatcher();
  f.kill(old);
  REQUIRE(test::wait_until([&] { return f.dispatcher() != old; }, test::max_test_wait,
                           "the supervisor to start a new dispatcher"));
  f.settle();
  // The restored workflow publishes its ready step again (at least once).
  auto again = f.take_tasks();
  REQUIRE(again.size() == 1);
  CHECK(again[0].workflow_id == id);
  CHECK(again[0].task == "a");
  f.report_success(again[0], 1);
  f.settle();
  auto next = f.take_tasks();
  REQUIRE(next.size() == 1);
  f.report_success(next[0], 2);
  f.settle();
  REQUIRE(f.finished().size() == 1);
  CHECK(f.finished()[0].id == id);
  CHECK(f.finished()[0].result == value(2));
}

namespace {

/// Stands in for the broker's "worker lost" advisories (cluster mode): the
/// dispatcher installs its sink here, and the handles it discards after
/// each commit are recorded.
class lost_task_feed {
 public:
  void install(dispatcher_config& cfg) {
    cfg.watch_lost_tasks = [this](std::function<void(std::string, std::int32_t, std::uint64_t)> sink) {
      std::lock_guard<std::mutex> guard{mutex_};
      sink_ = std::move(sink);
    };
    cfg.discard_lost_task = [this](std::uint64_t handle) {
      std::lock_guard<std::mutex> guard{mutex_};
      discarded_.push_back(handle);
    };
    cfg.pass_lost_task = [this](std::uint64_t handle) {
      std::lock_guard<std::mutex> guard{mutex_};
      passed_.push_back(handle);
    };
  }

  void lose(const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
    std::function<void(std::string, std::int32_t, std::uint64_t)> sink;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      sink = sink_;
    }
    REQUIRE(sink);
    sink(bytes, deliveries, handle);
  }

  std::vector<std::uint64_t> discarded() {
    std::lock_guard<std::mutex> guard{mutex_};
    return discarded_;
  }

  std::vector<std::uint64_t> passed() {
    std::lock_guard<std::mutex> guard{mutex_};
    return passed_;
  }

 private:
  std::mutex mutex_;
  std::function<void(std::string, std::int32_t, std::uint64_t)> sink_;
  std::vector<std::uint64_t> discarded_;
  std::vector<std::uint64_t> passed_;
};

}  // namespace

TEST_CASE(
    "a task lost on every delivery fails its node as worker_lost, is dead-lettered as 'worker lost' with its "
    "bytes, and is discarded after the commit",
    "[unit][actors][dispatcher][dlq]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  lost_task_feed lost;
  std::string task_bytes;
  {
    fixture f{db, [&](dispatcher_config& cfg) { lost.install(cfg); }};
    f.submit(chain(signature("a"), signature("b")));
    f.settle();
    auto fetched = f.bus->fetch_tasks({}, 10, 0ms);
    REQUIRE(fetched.size() == 1);
    task_bytes = fetched[0].bytes;
    lost.lose(task_bytes, 5, 77);
    f.settle();
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::failure);
    CHECK(f.finished()[0].error.as_map().at("type") == value("worker_lost"));
    CHECK(lost.discarded() == std::vector<std::uint64_t>{77});
    CHECK(lost.passed().empty());
    CHECK(f.take_tasks().empty());  // "b" never runs
  }
  auto store = sqlite_store::open(db);
  auto letters = store->dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  const auto& d = (*letters)[0];
  CHECK(d.reason == "worker lost");
  CHECK(d.envelope == task_bytes);
  CHECK(d.node == 1);  // node 0 is the chain
  CHECK(d.task == "a");
  CHECK(d.attempts == 1);
  CHECK(d.error.find("delivered 5 times") != std::string::npos);
}

TEST_CASE("a lost task with retries left is retried as a new attempt and not dead-lettered",
          "[unit][actors][dispatcher][retry]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  lost_task_feed lost;
  {
    fixture f{db, [&](dispatcher_config& cfg) { lost.install(cfg); }};
    f.submit(signature("a").retry(retry_policy::fixed(1, 1ms)));
    f.settle();
    auto fetched = f.bus->fetch_tasks({}, 10, 0ms);
    REQUIRE(fetched.size() == 1);
    lost.lose(fetched[0].bytes, 5, 9);
    f.settle();
    std::vector<envelope> retried;
    REQUIRE(test::wait_until(
        [&] {
          f.settle();
          retried = f.take_tasks();
          return !retried.empty();
        },
        test::max_test_wait, "attempt 2 to be published"));
    REQUIRE(retried.size() == 1);
    CHECK(retried[0].attempt == 2);
    f.report_success(retried[0], "ok");
    f.settle();
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(lost.discarded() == std::vector<std::uint64_t>{9});
  }
  auto store = sqlite_store::open(db);
  auto letters = store->dead_letters();
  REQUIRE(letters);
  CHECK(letters->empty());
}

TEST_CASE(
    "a partition's dispatcher refuses submissions of another partition's workflows, ignores their lost tasks "
    "and dead-letters their outcomes",
    "[unit][actors][dispatcher][partition]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  // The fixture names its first workflow "wf-1".
  int other = partition_of("wf-1", 2);
  lost_task_feed lost;
  {
    fixture f{db, [&](dispatcher_config& cfg) {
                lost.install(cfg);
                cfg.partition = 1 - other;
                cfg.partitions = 2;
              }};
    CHECK(f.submit(signature("a")).empty());  // refused: the answer is an error
    f.settle();
    CHECK(f.take_tasks().empty());

    auto task = test::task_envelope("wf-1:0:1", {"wf-1", 0, 1, "a"}, "default");
    lost.lose(encode(task), 5, 3);
    auto out = test::outcome_envelope("wf-1:0:1:out", {"wf-1", 0, 1, "a"}, outcome_status::success, 1, "", "");
    REQUIRE(f.bus->publish_events({{other, encode(out)}}));
    f.settle();
    CHECK(lost.discarded().empty());                        // its owner discards it
    CHECK(lost.passed() == std::vector<std::uint64_t>{3});  // and this one stops being offered it
  }
  auto store = sqlite_store::open(db);
  CHECK_FALSE(store->find_workflow("wf-1").value());
  auto letters = store->dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  CHECK((*letters)[0].reason == "wrong_partition");
  CHECK((*letters)[0].workflow_id == "wf-1");
}

namespace {

/// The in-process transport, recording for every `publish_tasks` call how
/// many tasks it carried and how many workflow rows the store file had
/// committed at that moment (read over a connection of its own).
class commit_watching_transport final : public transport {
 public:
  commit_watching_transport(std::shared_ptr<inproc_transport> inner, std::string db)
      : inner_(std::move(inner)), db_(std::move(db)) {}

  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override {
    auto committed = test::try_count(db_, "SELECT count(*) FROM workflows");
    {
      std::lock_guard<std::mutex> guard{mutex_};
      calls_.emplace_back(messages.size(), committed.value_or(-1));
    }
    return inner_->publish_tasks(queue, messages);
  }
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait) override {
    return inner_->fetch_tasks(queues, max, wait);
  }
  void ack_task(const delivery& d) override { inner_->ack_task(d); }
  expected<void> publish_events(std::vector<outgoing_event> messages) override {
    return inner_->publish_events(std::move(messages));
  }
  void consume_events(std::function<void(std::vector<delivery>)> sink) override {
    inner_->consume_events(std::move(sink));
  }
  void ack_event(const delivery& d) override { inner_->ack_event(d); }
  void close() override { inner_->close(); }

  /// (tasks, committed workflow rows) of every publish_tasks call so far.
  std::vector<std::pair<std::size_t, std::int64_t>> calls() {
    std::lock_guard<std::mutex> guard{mutex_};
    return calls_;
  }

 private:
  std::shared_ptr<inproc_transport> inner_;
  std::string db_;
  std::mutex mutex_;
  std::vector<std::pair<std::size_t, std::int64_t>> calls_;
};

}  // namespace

TEST_CASE(
    "a large group is committed before its first task is published, then published in chunks while encoding, "
    "each task once",
    "[unit][actors][dispatcher]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  auto inner = std::make_shared<inproc_transport>();
  auto watching = std::make_shared<commit_watching_transport>(inner, db);
  fixture f{db, [&](dispatcher_config& cfg) { cfg.bus = watching; }};
  constexpr std::size_t members = 3000;
  std::vector<canvas> noops;
  for (std::size_t i = 0; i < members; ++i) {
    noops.push_back(signature("noop"));
  }
  f.submit(group(std::move(noops)));
  f.settle();

  auto calls = watching->calls();
  REQUIRE(calls.size() >= 3);  // 3,000 tasks in chunks of at most 1,024
  std::size_t published = 0;
  for (const auto& [tasks, committed] : calls) {
    CHECK(tasks <= 1024);
    CHECK(committed == 1);  // the workflow row was durable before any of its tasks left
    published += tasks;
  }
  CHECK(published == members);

  std::vector<envelope> tasks;
  for (auto batch = inner->fetch_tasks({}, 1000, 0ms); !batch.empty(); batch = inner->fetch_tasks({}, 1000, 0ms)) {
    for (auto& d : batch) {
      auto e = decode(d.bytes);
      REQUIRE(e);
      tasks.push_back(*e);
    }
  }
  REQUIRE(tasks.size() == members);
  std::set<std::int32_t> nodes;
  for (const auto& t : tasks) {
    nodes.insert(t.node);
    auto out = test::outcome_envelope(t.id + ":out", {t.workflow_id, t.node, t.attempt, t.task},
                                      outcome_status::success, value{}, "", "");
    REQUIRE(inner->publish_events({{0, encode(out)}}));
  }
  CHECK(nodes.size() == members);
  REQUIRE(test::wait_until([&] { return f.finished().size() == 1; }, test::max_test_wait, "the group to finish"));
  CHECK(f.finished()[0].state == node_state::success);
}

TEST_CASE(
    "a chord body whose header results add up past max_argument_bytes fails at once with payload_too_large, is "
    "dead-lettered, and the queue goes on",
    "[unit][actors][dispatcher][dlq]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  canvas_limits limits;
  limits.max_argument_bytes = 1 << 20;
  const auto limit = limits.max_argument_bytes;
  {
    fixture f{db, [&](detail::dispatcher_config& cfg) { cfg.limits = limits; }};
    f.submit(chord(group(signature("part"), signature("part"), signature("part")), signature("join")));
    f.settle();
    auto parts = f.take_tasks();
    REQUIRE(parts.size() == 3);
    // Each result fits an event; the three together, as the body's
    // argument, do not fit one task message.
    for (const auto& t : parts) {
      f.report_success(t, std::string(limit / 3 + 1024, 'r'));
    }
    f.settle();
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::failure);
    CHECK(f.finished()[0].error.as_map().at("type") == value("payload_too_large"));
    CHECK(f.take_tasks().empty());  // the body was never published
    CHECK(f.stats->total(counter::tasks_failed) == 1);
    // Nothing holds up the queue: the next workflow's task goes out.
    f.submit(signature("after"));
    f.settle();
    CHECK(f.take_tasks().size() == 1);
  }
  auto store = sqlite_store::open(db);
  auto letters = store->dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  const auto& d = (*letters)[0];
  CHECK(d.reason == "payload_too_large");
  CHECK(d.task == "join");
  CHECK_THAT(d.error, Catch::Contains("beyond max_argument_bytes (" + std::to_string(limits.max_argument_bytes) + ")"));
  CHECK(d.envelope.size() > limit);  // the task message as it would have gone out, for a replay
}

namespace {

/// The in-process transport behind a broker that refuses the next
/// `refusals` task publishes (as NATS does while it is away), recording the
/// message ids of every list the dispatcher hands over.
class refusing_broker final : public test::forwarding_transport {
 public:
  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      std::vector<std::string> ids;
      for (const auto& m : messages) {
        ids.push_back(m.id);
      }
      attempts_.push_back(std::move(ids));
      if (refusals_ > 0) {
        --refusals_;
        return error{errc::broker_unavailable, "the test's broker is away"};
      }
    }
    return inner.publish_tasks(queue, messages);
  }

  void refuse(int n) {
    std::lock_guard<std::mutex> guard{mutex_};
    refusals_ = n;
  }
  std::vector<std::vector<std::string>> attempts() {
    std::lock_guard<std::mutex> guard{mutex_};
    return attempts_;
  }

 private:
  std::mutex mutex_;
  int refusals_ = 0;
  std::vector<std::vector<std::string>> attempts_;
};

}  // namespace

TEST_CASE(
    "A task list the broker refused is published again unchanged, before and apart from later tasks, so its "
    "packs keep their message ids",
    "[unit][dispatcher]") {
  test::dispatcher_harness<refusing_broker> f{":memory:"};
  f.bus->refuse(3);
  f.submit(group({signature("a"), signature("a"), signature("a")}), "first");
  f.settle();
  // Later tasks of the same queue come while the first list still waits.
  f.submit(group({signature("a"), signature("a")}), "second");
  f.settle();
  auto second_sent = [&] {
    for (const auto& ids : f.bus->attempts()) {
      if (!ids.empty() && ids[0].rfind("second:", 0) == 0) {
        return true;
      }
    }
    return false;
  };
  REQUIRE(test::wait_until(second_sent, test::max_test_wait, "the new list published after the refused one"));

  auto attempts = f.bus->attempts();
  REQUIRE(attempts.size() == 5);  // three refusals of the first list, its success, then the second list
  const auto& refused = attempts[0];
  CHECK(refused.size() == 3);
  for (std::size_t i = 1; i < 4; ++i) {
    CHECK(attempts[i] == refused);  // the same list again, never merged with the new tasks
  }
  CHECK(attempts[4].size() == 2);
  for (const auto& id : attempts[4]) {
    CHECK(id.rfind("second:", 0) == 0);
  }
  CHECK(f.take_tasks().size() == 5);
}
