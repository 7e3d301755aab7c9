// The dispatcher and a `replace` event, with the test standing in for the
// workers: the replacement applied once however often the event comes, a
// canvas refused as a submission would be, and a dispatcher that restarts
// after the commit reattaching the stored replacement instead of running
// the step again.

#include "support/dispatcher_harness.hpp"
#include "support/envelopes.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;

namespace {

using fixture = test::dispatcher_harness<>;

/// Reports that `task` replaced itself with `with`, as a worker would.
void report_replace(fixture& f, const envelope& task, const value& with) {
  envelope out;
  out.type = envelope_type::replace;
  out.id = task.id + ":out";
  out.workflow_id = task.workflow_id;
  out.node = task.node;
  out.attempt = task.attempt;
  out.task = task.task;
  out.payload = with;
  out.sent_at = 1;
  REQUIRE(f.bus->publish_events({{0, encode(out)}}));
}

value identities(int n) {
  value::array members;
  for (int i = 0; i < n; ++i) {
    members.emplace_back(value::map{{"task", "identity"}, {"args", value::array{i}}});
  }
  return value::map{{"group", std::move(members)}};
}

}  // namespace

TEST_CASE("a replace event expands the step once, however often it comes", "[unit][actors][dispatcher][fanout]") {
  test::temp_dir dir;
  auto db = dir.file("store.db");
  fixture f{db};
  f.submit(chain(signature("split", {3}), signature("xsum")));
  f.settle();
  auto split = f.take_tasks();
  REQUIRE(split.size() == 1);

  report_replace(f, split[0], identities(3));
  report_replace(f, split[0], identities(5));  // redelivered, or a second word: a duplicate
  f.settle();
  auto members = f.take_tasks();
  REQUIRE(members.size() == 3);
  CHECK(f.stats->total(counter::duplicates) == 1);
  CHECK(test::count_rows(db, "SELECT count(*) FROM node_replacements") == 1);
  for (std::size_t i = 0; i < members.size(); ++i) {
    CHECK(members[i].task == "identity");
    f.report_success(members[i], static_cast<std::int64_t>(i));
  }
  f.settle();
  auto last = f.take_tasks();
  REQUIRE(last.size() == 1);
  CHECK(last[0].task == "xsum");
  CHECK(to_json(value(last[0].args)) == "[[0,1,2]]");
  // A late outcome of the replaced attempt changes nothing either.
  f.report_success(split[0], 99);
  f.report_success(last[0], 3);
  f.settle();
  REQUIRE(f.finished().size() == 1);
  CHECK(f.finished()[0].result == value(3));
}

TEST_CASE("a replacement canvas that does not parse fails the step as invalid_workflow, without a retry",
          "[unit][actors][dispatcher][fanout]") {
  fixture f{":memory:"};
  f.submit(
      chain(signature("split", {3}).retry(retry_policy::fixed(3, std::chrono::milliseconds{1})), signature("xsum")));
  f.settle();
  auto split = f.take_tasks();
  REQUIRE(split.size() == 1);
  report_replace(f, split[0], value::map{{"chain", value::array{}}});
  f.settle();
  REQUIRE(f.finished().size() == 1);
  CHECK(f.finished()[0].state == node_state::failure);
  CHECK(f.finished()[0].error.as_map().at("type") == value("invalid_workflow"));
  CHECK(f.take_tasks().empty());
}

TEST_CASE("a dispatcher restarted after the commit reattaches the replacement and does not run the step again",
          "[unit][actors][dispatcher][fanout][recovery]") {
  test::temp_dir dir;
  fixture f{dir.file("store.db")};
  auto id = f.submit(chain(signature("split", {2}), signature("xsum")));
  f.settle();
  auto split = f.take_tasks();
  REQUIRE(split.size() == 1);
  report_replace(f, split[0], identities(2));
  f.settle();
  auto members = f.take_tasks();
  REQUIRE(members.size() == 2);
  f.report_success(members[0], 0);
  f.settle();

  auto old = f.dispatcher();
  f.kill(old);
  REQUIRE(test::wait_until([&] { return f.dispatcher() != old; }, test::max_test_wait,
                           "the supervisor to start a new dispatcher"));
  f.settle();
  // Only the member without an outcome goes out again, at the id it had.
  auto again = f.take_tasks();
  REQUIRE(again.size() == 1);
  CHECK(again[0].task == "identity");
  CHECK(again[0].node == members[1].node);
  f.report_success(again[0], 1);
  f.settle();
  auto last = f.take_tasks();
  REQUIRE(last.size() == 1);
  CHECK(last[0].task == "xsum");
  f.report_success(last[0], 1);
  f.settle();
  REQUIRE(f.finished().size() == 1);
  CHECK(f.finished()[0].id == id);
}
