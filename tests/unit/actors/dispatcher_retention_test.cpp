// Retention on virtual time (decision 0036): the dispatcher's expiry timer
// deletes finished workflows once `result_expires` has passed, in bounded
// batches, and never an unfinished one; an expired idempotency key lets its
// step run again; dead letters go by their own age; `forget` and `prune`
// by request. The clock is the test's (support/virtual_time.hpp): nothing
// waits for real time.

#include "support/envelopes.hpp"
#include "support/virtual_time.hpp"

#include "trellis/actors/dispatcher.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/inproc_transport.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

struct retention {
  std::chrono::milliseconds results{0};
  std::chrono::milliseconds keys{0};
  std::chrono::milliseconds letters{0};
};

/// One dispatcher on virtual time with the in-process transport and no
/// workers (the test reports outcomes), sweeping every second, two rows a
/// batch.
class expiring_dispatcher {
 public:
  explicit expiring_dispatcher(retention r, const std::function<void(sqlite_store&)>& before_start = {}) {
    if (before_start) {
      before_start(*store);
    }
    dispatcher_config cfg;
    cfg.clock = time.clock;
    cfg.store = store;
    cfg.bus = bus_;
    cfg.stats = stats;
    cfg.jitter_seed = 1;
    cfg.result_expires = r.results;
    cfg.idempotency_key_expires = r.keys;
    cfg.dead_letter_expires = r.letters;
    cfg.retention_sweep_interval = 1000ms;
    cfg.retention_batch = 2;
    dispatcher = spawn_dispatcher(time.system(), std::move(cfg));
    time.run();
  }

  ~expiring_dispatcher() {
    caf::anon_send_exit(dispatcher, caf::exit_reason::user_shutdown);
    time.run();
    bus_->close();
  }

  expiring_dispatcher(const expiring_dispatcher&) = delete;
  expiring_dispatcher& operator=(const expiring_dispatcher&) = delete;

  void submit(const canvas& flow, const std::string& id) {
    envelope e;
    e.type = envelope_type::submit;
    e.workflow_id = id;
    e.id = id + ":submit";
    e.payload = to_value(flow);
    REQUIRE(time.ask<std::string>(dispatcher, submit_atom::value, encode(e)));
  }

  std::vector<envelope> take_tasks() {
    std::vector<envelope> out;
    for (auto& d : bus_->fetch_tasks({}, 1000, 0ms)) {
      auto e = decode(d.bytes);
      REQUIRE(e);
      out.push_back(*e);
    }
    return out;
  }

  void succeed(const envelope& task, value result = value{7}) {
    auto out = test::outcome_envelope(task.id + ":out", {task.workflow_id, task.node, task.attempt, task.task},
                                      outcome_status::success, std::move(result), "", "");
    REQUIRE(bus_->publish_events({{0, encode(out)}}));
    time.run();
  }

  bool holds(const std::string& wf) {
    auto w = store->find_workflow(wf);
    REQUIRE(w);
    return w->has_value();
  }

  test::virtual_time time;
  std::shared_ptr<sqlite_store> store = sqlite_store::open(":memory:");
  std::shared_ptr<metrics> stats = std::make_shared<metrics>();
  dispatcher_actor dispatcher;

 private:
  std::shared_ptr<inproc_transport> bus_ = std::make_shared<inproc_transport>();
};

dead_letter_record letter_at(std::int64_t at) {
  dead_letter_record d;
  d.message_id = "m";
  d.workflow_id = "wf-x";
  d.node = 0;
  d.task = "t";
  d.reason = "task_failed";
  d.error = "boom";
  d.attempts = 1;
  d.envelope = "bytes";
  d.created_at = at;
  return d;
}

}  // namespace

TEST_CASE("finished workflows are deleted once result_expires has passed, in batches; unfinished ones stay",
          "[unit][actors][dispatcher][virtual_time][retention]") {
  expiring_dispatcher f{retention{60'000ms, 0ms, 0ms}};
  for (auto id : {"wf-1", "wf-2", "wf-3", "wf-running"}) {
    f.submit(signature("t"), id);
  }
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 4);
  for (const auto& t : tasks) {
    if (t.workflow_id != "wf-running") {
      f.succeed(t);
    }
  }
  f.time.advance(60'000ms);  // finished exactly result_expires ago: kept
  for (auto id : {"wf-1", "wf-2", "wf-3", "wf-running"}) {
    CHECK(f.holds(id));
  }
  // The next sweep deletes two (a batch), and the one it queues at once
  // after a full batch deletes the third.
  f.time.advance(1000ms);
  for (auto id : {"wf-1", "wf-2", "wf-3"}) {
    CHECK_FALSE(f.holds(id));
    auto nodes = f.store->nodes_of(id);
    REQUIRE(nodes);
    CHECK(nodes->empty());
  }
  CHECK(f.holds("wf-running"));
  CHECK(f.stats->total(counter::rows_pruned) == 6);  // each: its workflow row and its node row
  CHECK_THAT(f.stats->prometheus_text(), Catch::Contains("trellis_pruned_rows_total{queue=\"\",task=\"\"} 6"));

  // Unfinished, it stays however long it runs; finished, it goes in turn.
  f.time.advance(3'600'000ms);
  CHECK(f.holds("wf-running"));
  for (const auto& t : tasks) {
    if (t.workflow_id == "wf-running") {
      f.succeed(t);
    }
  }
  f.time.advance(61'000ms);
  CHECK_FALSE(f.holds("wf-running"));
  CHECK(f.time.has_delayed_message());  // the timer keeps going
}

TEST_CASE("with every retention at zero the dispatcher keeps everything and sets no timer",
          "[unit][actors][dispatcher][virtual_time][retention]") {
  expiring_dispatcher f{retention{}};
  f.submit(signature("t"), "wf-1");
  f.succeed(f.take_tasks().at(0));
  CHECK_FALSE(f.time.has_delayed_message());
  f.time.advance(std::chrono::hours{24 * 365});
  CHECK(f.holds("wf-1"));
}

TEST_CASE("an expired idempotency key lets its step's effect happen again",
          "[unit][actors][dispatcher][virtual_time][retention][idempotency]") {
  expiring_dispatcher f{retention{0ms, 10'000ms, 0ms}};
  auto charge = signature("charge").idempotency_key("charge-order-17");
  f.submit(charge, "wf-a");
  auto first = f.take_tasks();
  REQUIRE(first.size() == 1);
  f.succeed(first[0], value{"charged"});

  // Within the key's retention: answered from the key, nothing runs.
  f.time.advance(5'000ms);
  f.submit(charge, "wf-b");
  CHECK(f.take_tasks().empty());
  auto b = f.store->find_workflow("wf-b");
  REQUIRE(b);
  REQUIRE(b->has_value());
  CHECK((*b)->state == node_state::success);
  CHECK((*b)->result == value{"charged"});
  CHECK(f.stats->total(counter::idempotent_hits) == 1);

  // Past it: the key is gone and the same step runs again.
  f.time.advance(6'000ms);
  auto key = f.store->find_idempotency_key("charge-order-17");
  REQUIRE(key);
  CHECK_FALSE(key->has_value());
  f.submit(charge, "wf-c");
  auto again = f.take_tasks();
  REQUIRE(again.size() == 1);
  CHECK(again[0].task == "charge");
  CHECK(again[0].workflow_id == "wf-c");
}

TEST_CASE("dead letters are deleted by their own age, also those of workflows already pruned",
          "[unit][actors][dispatcher][virtual_time][retention][dlq]") {
  auto start = test::virtual_time::epoch_at_start;
  expiring_dispatcher f{retention{1'000ms, 0ms, 30'000ms}, [&](sqlite_store& store) {
                          REQUIRE(store.begin());
                          REQUIRE(store.insert_dead_letter(letter_at(start - 40'000)));  // expired at start
                          REQUIRE(store.insert_dead_letter(letter_at(start - 10'000)));  // 20 s left
                          REQUIRE(store.commit());
                        }};
  auto letters = f.store->dead_letters(true);
  REQUIRE(letters);
  CHECK(letters->size() == 1);  // the first sweep runs right after the start
  f.time.advance(19'000ms);
  letters = f.store->dead_letters(true);
  REQUIRE(letters);
  CHECK(letters->size() == 1);
  f.time.advance(2'000ms);
  letters = f.store->dead_letters(true);
  REQUIRE(letters);
  CHECK(letters->empty());
}

TEST_CASE("forget deletes one finished workflow, refuses an unfinished one; prune deletes by age",
          "[unit][actors][dispatcher][virtual_time][retention]") {
  expiring_dispatcher f{retention{}};
  for (auto id : {"wf-1", "wf-2", "wf-3", "wf-running"}) {
    f.submit(signature("t"), id);
  }
  auto tasks = f.take_tasks();
  for (const auto& t : tasks) {
    if (t.workflow_id != "wf-running") {
      f.succeed(t);
    }
  }
  auto forgotten = f.time.ask<std::string>(f.dispatcher, forget_atom::value, std::string{"wf-1"});
  REQUIRE(forgotten);
  CHECK(*forgotten == "wf-1");
  CHECK_FALSE(f.holds("wf-1"));

  auto running = f.time.ask<std::string>(f.dispatcher, forget_atom::value, std::string{"wf-running"});
  REQUIRE_FALSE(running);
  CHECK(from_caf_error(running.error(), "").code() == errc::invalid_workflow);
  CHECK(f.holds("wf-running"));
  auto unknown = f.time.ask<std::string>(f.dispatcher, forget_atom::value, std::string{"wf-nobody"});
  REQUIRE_FALSE(unknown);
  CHECK(from_caf_error(unknown.error(), "").code() == errc::not_found);

  // Prune by age: nothing finished more than an hour ago yet; then both.
  auto none = f.time.ask<std::int64_t>(f.dispatcher, expire_atom::value, std::int64_t{3'600'000});
  REQUIRE(none);
  CHECK(*none == 0);
  f.time.advance(3'601'000ms);
  auto pruned = f.time.ask<std::int64_t>(f.dispatcher, expire_atom::value, std::int64_t{3'600'000});
  REQUIRE(pruned);
  CHECK(*pruned == 2);  // wf-2 and wf-3, over two batches of 2
  CHECK(f.holds("wf-running"));
  auto refused = f.time.ask<std::int64_t>(f.dispatcher, expire_atom::value, std::int64_t{-1});
  REQUIRE_FALSE(refused);
  CHECK(from_caf_error(refused.error(), "").code() == errc::invalid_config);
}
