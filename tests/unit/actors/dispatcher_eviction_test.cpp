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

/// What one evicted run must show besides its result.
struct expected_run {
  value result;
  std::size_t messages;  // task messages published, each once
  std::size_t leaves;    // node rows, each recorded once
  std::uint64_t retries = 0;
};

/// Runs `c` as wf-1 with every idle graph evicted after every commit and
/// checks that it ends as it would with everything cached: its result, no
/// duplicate outcome, every task message published once and every leaf
/// recorded once, as a success.
void check_runs_as_cached(const canvas& c, const expected_run& want) {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  std::vector<std::string> published;
  {
    fixture f{db, evict_everything};
    f.submit(c);
    published = run_to_end(f);
    REQUIRE(f.finished().size() == 1);
    CHECK(f.finished()[0].state == node_state::success);
    CHECK(f.finished()[0].result == want.result);
    CHECK(f.stats->total(counter::retries) == want.retries);
    CHECK(f.stats->total(counter::duplicates) == 0);
    // The premise holds: graphs were dropped and read back along the way.
    CHECK(f.stats->total(counter::graph_rebuilds) > 0);
    CHECK(f.stats->total(counter::graph_evictions) >= f.stats->total(counter::graph_rebuilds));
  }
  CHECK(published.size() == want.messages);
  std::set<std::string> unique(published.begin(), published.end());
  CHECK(unique.size() == published.size());
  auto store = sqlite_store::open(db);
  auto rows = store->nodes_of("wf-1");
  REQUIRE(rows);
  CHECK(rows->size() == want.leaves);
  for (const auto& r : *rows) {
    CHECK(r.state == node_state::success);
  }
}

}  // namespace

TEST_CASE("a chain finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  check_runs_as_cached(chain(signature("a"), signature("b"), signature("c")), {value("c"), 3, 3});
}

TEST_CASE("a group finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  check_runs_as_cached(group(signature("a"), signature("b"), signature("c"), signature("d")),
                       {value(value::array{"a", "b", "c", "d"}), 4, 4});
}

TEST_CASE("a chord finishes while its graph is evicted between every event", "[unit][actors][dispatcher][eviction]") {
  check_runs_as_cached(chord(group(signature("a"), signature("b"), signature("c")), signature("sum")),
                       {value("sum"), 4, 4});
}

TEST_CASE("a retried step inside a chain finishes while the graph is evicted between every event",
          "[unit][actors][dispatcher][eviction][retry]") {
  // a, flaky attempt 1, flaky attempt 2, c
  check_runs_as_cached(chain(signature("a"), signature("flaky").retry(retry_policy::fixed(2, 1ms)), signature("c")),
                       {value("c"), 4, 3, 1});
}

TEST_CASE("a step waiting out its countdown keeps its graph cached while the rest of the workflow runs, and runs once",
          "[unit][actors][dispatcher][eviction]") {
  // "b" finishes while "later" waits: that commit would evict the graph but
  // for the due message in the mailbox, which then finds it cached.
  check_runs_as_cached(group(signature("later").countdown(50ms), signature("b"), signature("c")),
                       {value(value::array{"later", "b", "c"}), 3, 3});
}
