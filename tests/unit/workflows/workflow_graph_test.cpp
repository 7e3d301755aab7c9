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

namespace {

signature task(const char* name, value::array args = {}) { return signature(name, std::move(args)); }

/// Leaf ids that are ready, mapped to their task names, for readable checks.
std::vector<std::string> names_of(const workflow_graph& g, const std::vector<node_id>& ids) {
  std::vector<std::string> out;
  for (auto id : ids) {
    out.push_back(g.node(id).sig->task());
  }
  return out;
}

using trellis::test::dispatch;

}  // namespace

TEST_CASE("a chain passes each result as the first argument of the next step", "[unit][graph][chain]") {
  workflow_graph g{chain(task("add", {2, 2}), task("add", {4}), task("mul", {10}))};
  auto fx = g.start();
  auto ready = dispatch(g, fx);
  REQUIRE(names_of(g, ready) == std::vector<std::string>{"add"});
  CHECK(g.arguments_of(ready[0]) == value::array{2, 2});

  graph_effects fx2;
  REQUIRE(g.succeed(ready[0], 1, 4, fx2) == apply_result::applied);
  ready = dispatch(g, fx2);
  REQUIRE(ready.size() == 1);
  CHECK(g.arguments_of(ready[0]) == value::array{4, 4});

  graph_effects fx3;
  g.succeed(ready[0], 1, 8, fx3);
  ready = dispatch(g, fx3);
  CHECK(g.arguments_of(ready[0]) == value::array{8, 10});

  graph_effects fx4;
  g.succeed(ready[0], 1, 80, fx4);
  CHECK(fx4.finished);
  CHECK(g.is_finished());
  CHECK(g.root().state == node_state::success);
  CHECK(g.root().result == value(80));
}

TEST_CASE("an immutable step ignores the previous result", "[unit][graph][chain]") {
  workflow_graph g{chain(task("add", {1, 1}), task("add", {5, 5}).immutable())};
  auto first = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(first[0], 1, 2, fx);
  auto second = dispatch(g, fx);
  CHECK(g.arguments_of(second[0]) == value::array{5, 5});
}

TEST_CASE("a group starts every member at once and returns results in call order", "[unit][graph][group]") {
  workflow_graph g{group(task("a"), task("b"), task("c"))};
  auto ready = dispatch(g, g.start());
  REQUIRE(names_of(g, ready) == std::vector<std::string>{"a", "b", "c"});
  graph_effects fx;
  // Finish out of order: the result order must still be the call order.
  g.succeed(ready[2], 1, "C", fx);
  g.succeed(ready[0], 1, "A", fx);
  CHECK_FALSE(fx.finished);
  g.succeed(ready[1], 1, "B", fx);
  CHECK(fx.finished);
  CHECK(g.root().result == value(value::array{"A", "B", "C"}));
}

TEST_CASE("a chord runs its body once with the header results in header order", "[unit][graph][chord]") {
  workflow_graph g{chord({task("h1"), task("h2")}, task("body", {"x"}))};
  auto ready = dispatch(g, g.start());
  REQUIRE(names_of(g, ready) == std::vector<std::string>{"h1", "h2"});
  graph_effects fx;
  g.succeed(ready[1], 1, 2, fx);
  CHECK(fx.ready.empty());
  g.succeed(ready[0], 1, 1, fx);
  auto body = dispatch(g, fx);
  REQUIRE(names_of(g, body) == std::vector<std::string>{"body"});
  CHECK(g.arguments_of(body[0]) == value::array{value::array{1, 2}, "x"});
  graph_effects done;
  g.succeed(body[0], 1, "ok", done);
  CHECK(done.finished);
  CHECK(g.root().result == value("ok"));
}

TEST_CASE("a chord with an empty header calls its body with an empty list", "[unit][graph][chord]") {
  workflow_graph g{chord(std::vector<canvas>{}, task("body"))};
  auto ready = dispatch(g, g.start());
  REQUIRE(names_of(g, ready) == std::vector<std::string>{"body"});
  CHECK(g.arguments_of(ready[0]) == value::array{value::array{}});
}

TEST_CASE("a duplicate outcome never advances a chain twice", "[unit][graph][chain][once]") {
  workflow_graph g{chain(task("a"), task("b"), task("c"))};
  auto a = dispatch(g, g.start());
  graph_effects fx;
  REQUIRE(g.succeed(a[0], 1, 1, fx) == apply_result::applied);
  auto b = dispatch(g, fx);
  graph_effects again;
  CHECK(g.succeed(a[0], 1, 1, again) == apply_result::duplicate);
  CHECK(again.ready.empty());
  CHECK(g.node(b[0]).attempt == 1);
}

TEST_CASE("a duplicate outcome never counts a chord member twice", "[unit][graph][chord][once]") {
  workflow_graph g{chord({task("h1"), task("h2")}, task("body"))};
  auto header = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(header[0], 1, 1, fx);
  // The same member reported again must not complete the header.
  CHECK(g.succeed(header[0], 1, 1, fx) == apply_result::duplicate);
  CHECK(fx.ready.empty());
  g.succeed(header[1], 1, 2, fx);
  CHECK(names_of(g, fx.ready) == std::vector<std::string>{"body"});
}

TEST_CASE("an outcome of an earlier attempt is ignored once a retry was dispatched", "[unit][graph][once]") {
  workflow_graph g{task("flaky")};
  auto leaf = dispatch(g, g.start());
  REQUIRE(g.schedule_retry(leaf[0], 1) == apply_result::applied);
  g.mark_dispatched(leaf[0], 2);
  graph_effects fx;
  CHECK(g.succeed(leaf[0], 1, "late", fx) == apply_result::duplicate);
  CHECK(g.succeed(leaf[0], 2, "fresh", fx) == apply_result::applied);
  CHECK(g.root().result == value("fresh"));
}

TEST_CASE("a chain stops at its first failure", "[unit][graph][chain][failure]") {
  workflow_graph g{chain(task("a"), task("b"), task("c"))};
  auto a = dispatch(g, g.start());
  graph_effects fx;
  g.fail(a[0], 1, value::map{{"type", "boom"}, {"message", "bad"}}, fx);
  CHECK(fx.ready.empty());
  CHECK(fx.finished);
  CHECK(g.root().state == node_state::failure);
  const auto& err = g.root().error.as_map();
  CHECK(err.at("task") == value("a"));
  CHECK(err.at("message") == value("bad"));
}

TEST_CASE("a failed chord header does not run the body and names the failed task", "[unit][graph][chord][failure]") {
  workflow_graph g{chord({task("ok"), task("broken"), task("slow")}, task("body"))};
  auto header = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(header[0], 1, 1, fx);
  g.fail(header[1], 1, value::map{{"type", "E"}, {"message", "m"}}, fx);
  // Like Celery, the chord waits for every member before deciding.
  CHECK_FALSE(fx.finished);
  g.succeed(header[2], 1, 3, fx);
  CHECK(fx.ready.empty());
  CHECK(fx.finished);
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("task") == value("broken"));
}

TEST_CASE("a group with a failing member fails with the first failure in call order", "[unit][graph][group][failure]") {
  workflow_graph g{group(task("a"), task("b"), task("c"))};
  auto ready = dispatch(g, g.start());
  graph_effects fx;
  g.fail(ready[2], 1, value::map{{"type", "E"}, {"message", "c failed"}}, fx);
  g.fail(ready[1], 1, value::map{{"type", "E"}, {"message", "b failed"}}, fx);
  g.succeed(ready[0], 1, 1, fx);
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("task") == value("b"));
}

TEST_CASE("a previous result is passed to every member of a following group", "[unit][graph][group]") {
  // chain(a, group(b, c)): the group ends the chain, so it stays a group.
  workflow_graph g{chain(task("a"), group(task("b", {1}), task("c", {2})))};
  auto a = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(a[0], 1, 10, fx);
  auto members = dispatch(g, fx);
  REQUIRE(members.size() == 2);
  CHECK(g.arguments_of(members[0]) == value::array{10, 1});
  CHECK(g.arguments_of(members[1]) == value::array{10, 2});
}

TEST_CASE("restoring replays stored outcomes and readies only what is left", "[unit][graph][recovery]") {
  auto flow = chord({task("h1"), task("h2"), task("h3")}, task("body"));
  workflow_graph first{flow};
  auto header = dispatch(first, first.start());
  graph_effects fx;
  first.succeed(header[0], 1, 1, fx);
  first.succeed(header[2], 1, 3, fx);

  // A new graph from the same canvas gets the same node ids.
  std::map<node_id, known_outcome> stored{{header[0], known_outcome{node_state::success, 1, 1, value{}}},
                                          {header[2], known_outcome{node_state::success, 1, 3, value{}}}};
  workflow_graph again{flow};
  auto restored = again.start([&](node_id id) -> std::optional<known_outcome> {
    auto i = stored.find(id);
    return i == stored.end() ? std::nullopt : std::optional<known_outcome>{i->second};
  });
  CHECK(names_of(again, restored.ready) == std::vector<std::string>{"h2"});
  CHECK(restored.replayed.size() == 2);
  dispatch(again, restored);
  graph_effects rest;
  again.succeed(restored.ready[0], 1, 2, rest);
  auto body = dispatch(again, rest);
  REQUIRE(body.size() == 1);
  CHECK(again.arguments_of(body[0]) == value::array{value::array{1, 2, 3}});
}

TEST_CASE("restoring a long finished chain needs no deep recursion", "[unit][graph][recovery]") {
  std::vector<canvas> steps;
  for (int i = 0; i < 200000; ++i) {
    steps.emplace_back(task("step"));
  }
  workflow_graph g{chain(std::move(steps))};
  auto fx = g.start([](node_id) { return known_outcome{node_state::success, 1, 7, value{}}; });
  CHECK(fx.finished);
  CHECK(fx.ready.empty());
  CHECK(g.root().result == value(7));
}

TEST_CASE("nested canvases expand to stable depth-first node ids", "[unit][graph]") {
  auto flow = chain(task("a"), chord({chain(task("b"), task("c")), task("d")}, group(task("e"), task("f"))));
  workflow_graph one{flow};
  workflow_graph two{flow};
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    CHECK(one.node(static_cast<node_id>(i)).kind == two.node(static_cast<node_id>(i)).kind);
    CHECK(one.node(static_cast<node_id>(i)).parent == two.node(static_cast<node_id>(i)).parent);
  }
}
