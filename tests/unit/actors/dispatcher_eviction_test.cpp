// The dispatcher with a cache of workflow graphs too small to hold any: every
// idle graph is evicted after each commit and rebuilt from the store when its
// next event arrives. Workflows must still finish exactly as with everything
// cached: no node recorded twice, no task message published twice.

#include "support/dispatcher_harness.hpp"
#include "support/envelopes.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

using fixture = test::dispatcher_harness<>;

void evict_everything(dispatcher_config& cfg) { cfg.max_cached_nodes = 0; }

/// Plays the worker until the workflow finishes: every task message succeeds
/// with its task name, except the first attempt of a task named "flaky",
/// which fails (and is retried). Settles after every single outcome, so the
/// graph is evicted between every two events. Returns the ids published.
std::vector<std::string> run_to_end(fixture& f) {
  std::vector<std::string> published;
  REQUIRE(test::wait_until(
      [&] {
        f.settle();
        for (const auto& t : f.take_tasks()) {
          published.push_back(t.id);
          if (t.task == "flaky" && t.attempt == 1) {
            auto out = test::outcome_envelope(t.id + ":out", {t.workflow_id, t.node, t.attempt, t.task},
                                              outcome_status::failure, value{}, "boom", "first attempt fails");
            REQUIRE(f.bus->publish_events({{0, encode(out)}}));
          } else {
            f.report_success(t, t.task);
          }
          f.settle();
        }
        return !f.finished().empty();
      },
      test::max_test_wait, "the workflow to finish"));
  return published;
}

void check_ran_once(const std::string& db, const std::vector<std::string>& published, std::size_t leaves) {
  std::set<std::string> unique(published.begin(), published.end());
  CHECK(unique.size() == published.size());  // no task message published twice
  auto store = sqlite_store::open(db);
  auto rows = store->nodes_of("wf-1");
  REQUIRE(rows);
  CHECK(rows->size() == leaves);  // every leaf recorded once
  for (const auto& r : *rows) {
    CHECK(r.state == node_state::success);
  }
}

}  // namespace

TEST_CASE("a chain finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    f.submit(chain(signature("a"), signature("b"), signature("c")));
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == value("c"));
    CHECK(f.stats->total(counter::duplicates) == 0);
  }
  CHECK(published.size() == 3);
  check_ran_once(db, published, 3);
}

TEST_CASE("a group finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    f.submit(group(signature("a"), signature("b"), signature("c"), signature("d")));
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == value(value::array{"a", "b", "c", "d"}));
  }
  CHECK(published.size() == 4);
  check_ran_once(db, published, 4);
}

TEST_CASE("a chord finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    f.submit(chord(group(signature("a"), signature("b"), signature("c")), signature("sum")));
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == value("sum"));
  }
  CHECK(published.size() == 4);
  check_ran_once(db, published, 4);
}

TEST_CASE("a retried step inside a chain finishes while the graph is evicted between every event",
          "[unit][actors][dispatcher][eviction][retry]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    f.submit(chain(signature("a"), signature("flaky").retry(retry_policy::fixed(2, 1ms)), signature("c")));
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == value("c"));
    CHECK(f.stats->total(counter::retries) == 1);
    CHECK(f.stats->total(counter::duplicates) == 0);
  }
  // a, flaky attempt 1, flaky attempt 2, c
  CHECK(published.size() == 4);
  check_ran_once(db, published, 3);
}

TEST_CASE("a step waiting out its countdown keeps its graph cached while the rest of the workflow runs, and runs once",
          "[unit][actors][dispatcher][eviction]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    // "b" finishes while "later" waits: that commit would evict the graph
    // but for the due message in the mailbox, which then finds it cached.
    f.submit(group(signature("later").countdown(50ms), signature("b"), signature("c")));
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == value(value::array{"later", "b", "c"}));
    CHECK(f.stats->total(counter::duplicates) == 0);
  }
  CHECK(published.size() == 3);
  check_ran_once(db, published, 3);
}
