// The embedded scheduler: the schedules table, the runner on virtual time
// (a clock the test sets, no sleeping), and one engine ticking every second.

#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include "trellis/engine.hpp"
#include "trellis/schedule_book.hpp"
#include "trellis/schedule_runner.hpp"
#include "trellis/store/sqlite_store.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using trellis::value;
using trellis::detail::schedule_runner;
using trellis::detail::sqlite_store;
namespace book = trellis::detail::schedule_book;

namespace {

trellis::canvas echo_flow() { return trellis::canvas(trellis::signature("echo", value::array{value{1}})); }

trellis::schedule_definition every(const std::string& name, std::chrono::milliseconds d,
                                   trellis::overlap_policy overlap = trellis::overlap_policy::skip) {
  trellis::schedule_definition def{name, echo_flow()};
  def.every = d;
  def.overlap = overlap;
  return def;
}

// Submits as the engine does: a workflow row per key, the same row for a key
// seen before (the store's UNIQUE submit key). Counts every call per key.
struct fake_engine {
  explicit fake_engine(sqlite_store& s, int first_id = 0) : store(s), next_id(first_id) {}
  sqlite_store& store;
  std::vector<std::string> calls;
  int next_id = 0;

  schedule_runner::submit_fn submitter() {
    return [this](const value& canvas, const std::string& key) -> trellis::expected<std::string> {
      calls.push_back(key);
      auto found = store.find_workflow_by_key(key);
      if (!found) return found.error();
      if (*found) return (*found)->id;
      trellis::detail::workflow_record w;
      w.id = "wf-" + std::to_string(++next_id);
      w.submit_key = key;
      w.state = trellis::node_state::started;
      w.canvas = canvas;
      REQUIRE(store.begin());
      REQUIRE(store.insert_workflow(w));
      REQUIRE(store.commit());
      return w.id;
    };
  }

  void finish(const std::string& id) {
    REQUIRE(store.begin());
    REQUIRE(store.finish_workflow(id, trellis::node_state::success, value{1}, value{}, 0));
    REQUIRE(store.commit());
  }

  std::set<std::string> distinct() const { return {calls.begin(), calls.end()}; }
};

std::optional<std::int64_t> due(schedule_runner& r, std::int64_t now) {
  auto next = r.run_due(now);
  INFO((next ? std::string{} : to_string(next.error())));
  REQUIRE(next);
  return *next;
}

}  // namespace

TEST_CASE("a schedule row is written with compare-and-set on its revision", "[unit][schedule][store]") {
  trellis::test::temp_dir dir;
  auto store = sqlite_store::open(dir.file("s.db"));
  REQUIRE(book::add(*store, every("r", 10s), 0));
  auto again = book::add(*store, every("r", 10s), 0);
  REQUIRE_FALSE(again);
  CHECK(again.error().message().find("exists") != std::string::npos);
  auto row = store->find_schedule("r");
  REQUIRE(row);
  REQUIRE(*row);
  CHECK((*row)->revision == 1);
  CHECK((*row)->spec.every == 10s);
  auto stale = **row;
  REQUIRE(book::pause(*store, "r", 5));
  stale.state.last_tick = 10'000;
  auto written = store->update_schedule(stale);
  REQUIRE(written);
  CHECK_FALSE(*written);  // the pause came in between
  auto bad = every("bad", 10s);
  bad.every = 500ms;
  CHECK_FALSE(book::add(*store, bad, 0));
  auto cron = trellis::schedule_definition{"cron", echo_flow()};
  cron.cron = "0 9 * * mon-fri";
  cron.zone = "Nowhere/Atlantis";
  CHECK_FALSE(book::add(*store, cron, 0));
  cron.zone = "Europe/Berlin";
  CHECK(book::add(*store, cron, 0));
  auto rows = book::list(*store, 0);
  REQUIRE(rows);
  REQUIRE(rows->size() == 2);
  CHECK(rows->at(0).as_map().at("name").as_string() == "cron");
  CHECK(rows->at(0).as_map().at("zone").as_string() == "Europe/Berlin");
  CHECK(rows->at(1).as_map().at("paused").as_bool());
  CHECK_FALSE(book::pause(*store, "missing", 0));
  CHECK(book::remove(*store, "cron"));
  CHECK_FALSE(book::remove(*store, "cron"));
}

TEST_CASE("a schedule row with a value this build does not accept reads as damaged", "[unit][schedule][store]") {
  trellis::test::temp_dir dir;
  auto path = dir.file("s.db");
  auto store = sqlite_store::open(path);
  REQUIRE(book::add(*store, every("r", 10s), 0));
  for (const char* edit : {"UPDATE schedules SET last_tick = -5", "UPDATE schedules SET overlap = 'cancel'",
                           "UPDATE schedules SET every_ms = 10", "UPDATE schedules SET anchor_ms = 9223372036854775807",
                           "UPDATE schedules SET cron = '* * * * *'"}) {
    INFO(edit);
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw, "SAVEPOINT s", nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw, edit, nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw, "RELEASE s", nullptr, nullptr, nullptr) == SQLITE_OK);
    auto row = store->find_schedule("r");
    REQUIRE_FALSE(row);
    CHECK(row.error().code() == trellis::errc::store_corrupt);
    // Put it back for the next edit.
    REQUIRE(sqlite3_exec(raw,
                         "UPDATE schedules SET last_tick = NULL, overlap = 'skip', every_ms = 10000, anchor_ms = 0, "
                         "cron = ''",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  CHECK(store->find_schedule("r"));
}

TEST_CASE("the runner submits each tick once with its key, on virtual time", "[unit][schedule][store]") {
  trellis::test::temp_dir dir;
  auto store = sqlite_store::open(dir.file("s.db"));
  fake_engine eng{*store};
  REQUIRE(book::add(*store, every("r", 10s, trellis::overlap_policy::allow), 0));
  schedule_runner runner{*store, eng.submitter()};
  CHECK(due(runner, 9'999) == 10'000);
  CHECK(eng.calls.empty());
  CHECK(due(runner, 10'000) == 20'000);
  CHECK(eng.calls == std::vector<std::string>{"schedule:r:10000"});
  CHECK(due(runner, 10'001) == 20'000);
  CHECK(eng.calls.size() == 1);

  SECTION("a crash between submitting and recording repeats the key: the same workflow") {
    // The crashed process submitted tick 20 s and died before recording it.
    REQUIRE(eng.submitter()(value{}, "schedule:r:20000"));
    // The next process, on a fresh connection, decides the same tick again.
    auto reopened = sqlite_store::open(dir.file("s.db"));
    fake_engine again{*reopened, 100};
    schedule_runner restarted{*reopened, again.submitter()};
    CHECK(due(restarted, 20'500) == 30'000);
    CHECK(again.calls == std::vector<std::string>{"schedule:r:20000"});
    auto wf = reopened->find_workflow_by_key("schedule:r:20000");
    REQUIRE(wf);
    REQUIRE(*wf);
    CHECK((*wf)->id == "wf-2");  // the crashed process's workflow, not a second one
  }
  SECTION("pause, resume, trigger and delete take effect at the next pass") {
    REQUIRE(book::pause(*store, "r", 15'000));
    CHECK_FALSE(due(runner, 30'000));
    CHECK(eng.calls.size() == 1);
    REQUIRE(book::resume(*store, "r", 35'000));
    CHECK(due(runner, 35'000) == 40'000);
    CHECK(eng.calls.size() == 1);  // ticks 20 s and 30 s fell while paused
    CHECK(due(runner, 40'000) == 50'000);
    CHECK(eng.calls.back() == "schedule:r:40000");
    REQUIRE(book::trigger(*store, "r", 41'000));
    REQUIRE(book::trigger(*store, "r", 41'500));  // asked twice before the pass: one run
    due(runner, 42'000);
    CHECK(eng.calls.back() == "schedule:r:trigger:41000");
    CHECK(eng.calls.size() == 3);
    REQUIRE(book::remove(*store, "r"));
    CHECK_FALSE(due(runner, 100'000));
    CHECK(eng.calls.size() == 3);
  }
}

TEST_CASE("the runner's overlap policies read the previous tick's workflow from the store",
          "[unit][schedule][store]") {
  trellis::test::temp_dir dir;
  auto store = sqlite_store::open(dir.file("s.db"));
  fake_engine eng{*store};
  REQUIRE(book::add(*store, every("skip", 10s, trellis::overlap_policy::skip), 0));
  REQUIRE(book::add(*store, every("buffer", 10s, trellis::overlap_policy::buffer_one), 0));
  schedule_runner runner{*store, eng.submitter()};
  due(runner, 10'000);
  CHECK(eng.distinct() == std::set<std::string>{"schedule:skip:10000", "schedule:buffer:10000"});
  // Both first runs still run at 20 s and 30 s.
  due(runner, 20'000);
  CHECK(runner.waiting_on_overlap());
  due(runner, 30'000);
  CHECK(eng.calls.size() == 2);
  for (const auto& key : {"schedule:skip:10000", "schedule:buffer:10000"}) {
    eng.finish((*store->find_workflow_by_key(key))->id);
  }
  due(runner, 31'000);
  // skip passed over 20 s and 30 s; buffer_one runs the tick it kept, 20 s.
  CHECK(eng.distinct() ==
        std::set<std::string>{"schedule:skip:10000", "schedule:buffer:10000", "schedule:buffer:20000"});
  due(runner, 40'000);
  CHECK(eng.distinct().count("schedule:skip:40000") == 1);
  CHECK(eng.distinct().count("schedule:buffer:40000") == 0);  // 20 s still runs: 40 s is buffered
}

TEST_CASE("an embedded engine ticks a schedule every second in real time, each tick once",
          "[unit][schedule][realtime]") {
  trellis::test::temp_dir dir;
  trellis::task_registry tasks;
  tasks.add("echo", {"x"}, [](trellis::task_context&, value x) { return x; });
  trellis::engine_config cfg;
  cfg.store_path = dir.file("s.db");
  cfg.concurrency = 1;
  auto keys_of = [](trellis::engine& eng) {
    std::vector<std::string> keys;
    auto page = eng.workflows(trellis::workflow_query{std::nullopt, 1000, ""});
    REQUIRE(page);
    for (const auto& w : page->as_map().at("workflows").as_array()) {
      const auto& key = w.as_map().at("key");
      if (key.is_string()) keys.push_back(key.as_string());
    }
    return keys;
  };
  {
    trellis::engine eng{cfg, tasks};
    REQUIRE(eng.add_schedule(every("tick", 1s, trellis::overlap_policy::allow)));
    REQUIRE(trellis::test::wait_until([&] { return keys_of(eng).size() >= 3; }, trellis::test::max_test_wait,
                                      "three ticks"));
    REQUIRE(eng.trigger_schedule("tick"));
    REQUIRE(trellis::test::wait_until(
        [&] {
          for (const auto& k : keys_of(eng))
            if (k.find(":trigger:") != std::string::npos) return true;
          return false;
        },
        trellis::test::max_test_wait, "the triggered run"));
    REQUIRE(eng.pause_schedule("tick"));
    auto listed = eng.schedules();
    REQUIRE(listed);
    REQUIRE(listed->size() == 1);
    CHECK(listed->front().as_map().at("paused").as_bool());
    REQUIRE(eng.resume_schedule("tick"));
  }
  // A restart on the same store: ticks go on, none twice.
  trellis::engine eng{cfg, tasks};
  auto before = keys_of(eng).size();
  REQUIRE(trellis::test::wait_until([&] { return keys_of(eng).size() >= before + 2; }, trellis::test::max_test_wait,
                                    "ticks after the restart"));
  auto keys = keys_of(eng);
  std::set<std::string> distinct(keys.begin(), keys.end());
  CHECK(distinct.size() == keys.size());
  // Interval ticks count whole seconds from when the schedule was added.
  std::vector<long long> ticks;
  for (const auto& k : keys) {
    INFO(k);
    CHECK(k.rfind("schedule:tick:", 0) == 0);
    if (k.find(":trigger:") == std::string::npos) ticks.push_back(std::stoll(k.substr(14)));
  }
  REQUIRE(ticks.size() >= 5);
  for (auto t : ticks) CHECK((t - ticks.front()) % 1000 == 0);
  REQUIRE(eng.delete_schedule("tick"));
  CHECK(eng.schedules()->empty());
  CHECK_FALSE(eng.delete_schedule("tick"));
}
