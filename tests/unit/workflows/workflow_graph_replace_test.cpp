// A leaf that replaces itself with a canvas (Celery's `replace`): the new
// nodes, the leaf ending as the replacement ends, duplicates of the replaced
// attempt, revoking through a replacement, and the restore that attaches
// stored replacements before replaying the stored outcomes.

#include "support/graph_steps.hpp"

#include "trellis/workflow_graph.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace trellis;
using trellis::detail::apply_result;
using trellis::detail::graph_effects;
using trellis::detail::known_outcome;
using trellis::detail::node_id;
using trellis::detail::workflow_graph;
using trellis::test::dispatch;

namespace {

signature task(const char* name, value::array args = {}) { return signature(name, std::move(args)); }

canvas identities(int n) {
  std::vector<canvas> members;
  for (int i = 0; i < n; ++i) {
    members.emplace_back(task("identity", {i}));
  }
  return group(std::move(members));
}

}  // namespace

TEST_CASE("a replaced leaf grows the replacement's nodes after the others and ends as it ends",
          "[unit][graph][replace]") {
  workflow_graph g{chain(task("split", {3}), task("xsum"))};
  auto ready = dispatch(g, g.start());
  REQUIRE(ready == std::vector<node_id>{1});
  auto before = static_cast<node_id>(g.size());

  graph_effects fx;
  REQUIRE(g.replace(1, 1, identities(3), fx) == apply_result::applied);
  // The group and its three members, appended: ids 3 (group), 4, 5, 6.
  CHECK(g.size() == static_cast<std::size_t>(before) + 4);
  CHECK(g.node(1).replacement == before);
  CHECK(g.node(before).parent == 1);
  CHECK(fx.ready == std::vector<node_id>{before + 1, before + 2, before + 3});
  CHECK(g.node(1).state == node_state::started);
  CHECK_FALSE(fx.finished);

  // The replaced attempt's outcome, again or late, is a duplicate.
  graph_effects dup;
  CHECK(g.replace(1, 1, identities(1), dup) == apply_result::duplicate);
  CHECK(g.succeed(1, 1, 7, dup) == apply_result::duplicate);
  CHECK(g.fail(1, 1, value("x"), dup) == apply_result::duplicate);
  CHECK(g.size() == static_cast<std::size_t>(before) + 4);

  dispatch(g, fx);
  graph_effects done;
  for (node_id i = 0; i < 3; ++i) {
    REQUIRE(g.succeed(before + 1 + i, 1, value(i), done) == apply_result::applied);
  }
  // The leaf took the group's list, and the chain went on to xsum with it.
  CHECK(done.replaced_done == std::vector<node_id>{1});
  CHECK(g.node(1).state == node_state::success);
  CHECK(to_json(g.node(1).result) == "[0,1,2]");
  REQUIRE(done.ready == std::vector<node_id>{2});
  CHECK(to_json(value(g.arguments_of(2))) == "[[0,1,2]]");
}

TEST_CASE("a replacement that fails fails the replaced leaf and its chain", "[unit][graph][replace]") {
  workflow_graph g{chain(task("split"), task("xsum"))};
  dispatch(g, g.start());
  graph_effects fx;
  REQUIRE(g.replace(1, 1, canvas(task("fail")), fx) == apply_result::applied);
  auto leaf = dispatch(g, fx);
  REQUIRE(leaf.size() == 1);
  graph_effects done;
  REQUIRE(g.fail(leaf[0], 1, value(value::map{{"type", "boom"}, {"message", "m"}}), done) == apply_result::applied);
  CHECK(done.finished);
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("task") == value("fail"));
}

TEST_CASE("a replacement may itself be replaced, and an empty group gives []", "[unit][graph][replace]") {
  workflow_graph g{task("split")};
  dispatch(g, g.start());
  graph_effects fx;
  REQUIRE(g.replace(0, 1, canvas(task("split")), fx) == apply_result::applied);
  auto inner = dispatch(g, fx);
  REQUIRE(inner.size() == 1);
  graph_effects fx2;
  REQUIRE(g.replace(inner[0], 1, group(std::vector<canvas>{}), fx2) == apply_result::applied);
  CHECK(fx2.finished);
  CHECK(g.root().state == node_state::success);
  CHECK(to_json(g.root().result) == "[]");
}

TEST_CASE("revoking a replaced leaf revokes what its replacement still runs", "[unit][graph][replace]") {
  workflow_graph g{chain(task("split"), task("xsum"))};
  dispatch(g, g.start());
  graph_effects fx;
  REQUIRE(g.replace(1, 1, identities(2), fx) == apply_result::applied);
  auto members = dispatch(g, fx);
  graph_effects one;
  REQUIRE(g.succeed(members[0], 1, 0, one) == apply_result::applied);
  std::vector<node_id> revoked;
  graph_effects rv;
  REQUIRE(g.revoke(1, value("stop"), revoked, rv) == apply_result::applied);
  CHECK(revoked == std::vector<node_id>{members[1]});
  CHECK(rv.finished);
  CHECK(g.node(1).state == node_state::revoked);
  CHECK(g.root().state == node_state::revoked);
  // Revoking the whole workflow from the root reaches the replacement's leaves too.
  workflow_graph h{chain(task("split"), task("xsum"))};
  dispatch(h, h.start());
  graph_effects hx;
  REQUIRE(h.replace(1, 1, identities(2), hx) == apply_result::applied);
  dispatch(h, hx);
  std::vector<node_id> all;
  graph_effects hr;
  REQUIRE(h.revoke(0, value("stop"), all, hr) == apply_result::applied);
  CHECK(all.size() == 3);  // the two members and xsum, which waited
  CHECK(h.root().state == node_state::revoked);
}

TEST_CASE("a restore attaches the stored replacements first and replays to the same ids", "[unit][graph][replace]") {
  // The run: split replaced by a group of three identities, two of which
  // finished before the crash.
  auto flow = chain(task("split", {3}), task("xsum"));
  workflow_graph live{flow};
  dispatch(live, live.start());
  graph_effects fx;
  REQUIRE(live.replace(1, 1, identities(3), fx) == apply_result::applied);
  auto members = dispatch(live, fx);
  graph_effects done;
  live.succeed(members[0], 1, 0, done);
  live.succeed(members[2], 1, 2, done);

  // The restore: the canvas, then the stored replacement, then the rows.
  std::map<node_id, known_outcome> rows;
  rows[1] = known_outcome{node_state::started, 1, {}, {}, 0};
  rows[members[0]] = known_outcome{node_state::success, 1, value(0), {}, 0};
  rows[members[2]] = known_outcome{node_state::success, 1, value(2), {}, 0};
  workflow_graph restored{flow};
  CHECK(restored.attach_replacement(1, identities(3)) == live.node(1).replacement);
  CHECK(restored.attach_replacement(1, identities(3)) == -1);  // once only
  auto rfx = restored.start([&](node_id id) -> std::optional<known_outcome> {
    auto it = rows.find(id);
    return it == rows.end() ? std::nullopt : std::optional<known_outcome>{it->second};
  });
  CHECK(restored.size() == live.size());
  // Only the member without an outcome runs again; split does not.
  CHECK(rfx.ready == std::vector<node_id>{members[1]});
  CHECK(rfx.replayed.size() == 2);
  dispatch(restored, rfx);
  graph_effects last;
  REQUIRE(restored.succeed(members[1], 1, 1, last) == apply_result::applied);
  REQUIRE(last.ready == std::vector<node_id>{2});
  CHECK(to_json(value(restored.arguments_of(2))) == "[[0,1,2]]");
}

TEST_CASE("a map over its input expands when the input arrives, and a restore reattaches it",
          "[unit][graph][replace][fanout]") {
  auto flow = chain(task("identity", {value::array{1, 2, 3}}), trellis::map_input("mul", {10}), task("xsum"));
  workflow_graph g{flow};
  auto first = dispatch(g, g.start());
  REQUIRE(first == std::vector<node_id>{1});
  auto before = g.size();
  graph_effects fx;
  REQUIRE(g.succeed(1, 1, value(value::array{1, 2, 3}), fx) == apply_result::applied);
  REQUIRE(fx.expanded == std::vector<node_id>{2});
  CHECK(fx.added_nodes == 4);
  CHECK(g.size() == before + 4);
  CHECK(to_json(g.replacement_canvas(2)) == R"({"map":{"args":[10],"items":[1,2,3],"task":"mul"}})");
  auto members = dispatch(g, fx);
  REQUIRE(members.size() == 3);
  CHECK(to_json(value(g.arguments_of(members[1]))) == "[2,10]");
  graph_effects done;
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(g.succeed(members[i], 1, value(static_cast<std::int64_t>(10 * (i + 1))), done) == apply_result::applied);
  }
  REQUIRE(done.ready == std::vector<node_id>{3});
  CHECK(to_json(value(g.arguments_of(3))) == "[[10,20,30]]");

  // Restored after the expansion was stored: the same ids, nothing expands again.
  workflow_graph restored{flow};
  CHECK(restored.attach_replacement(2, g.replacement_canvas(2)) == g.node(2).replacement);
  auto rfx = restored.start([&](node_id id) -> std::optional<known_outcome> {
    if (id == 1) {
      return known_outcome{node_state::success, 1, value(value::array{1, 2, 3}), {}, 0};
    }
    return std::nullopt;
  });
  CHECK(rfx.expanded.empty());
  CHECK(rfx.ready == members);
}

TEST_CASE("a map over an input that is not a list fails with map_input_not_a_list", "[unit][graph][fanout]") {
  workflow_graph g{chain(task("identity", {5}), trellis::map_input("mul", {10}), task("xsum"))};
  dispatch(g, g.start());
  graph_effects fx;
  REQUIRE(g.succeed(1, 1, value(5), fx) == apply_result::applied);
  CHECK(fx.finished);
  CHECK(fx.expanded.empty());
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("type") == value("map_input_not_a_list"));
  CHECK(g.root().error.as_map().at("task") == value("mul"));
}
