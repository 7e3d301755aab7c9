// Revoking a node of a graph: the revoked leaves, and what their chain,
// group or chord does next (Celery's rules for a revoked member).

#include "support/graph_steps.hpp"

#include "trellis/workflow_graph.hpp"

#include <catch2/catch.hpp>

using namespace trellis;
using trellis::detail::apply_result;
using trellis::detail::graph_effects;
using trellis::detail::node_id;
using trellis::detail::workflow_graph;

namespace {

signature task(const char* name, value::array args = {}) { return signature(name, std::move(args)); }

const value revoked_error = value(value::map{{"type", "revoked"}, {"message", "revoked by request"}});

using trellis::test::dispatch;

}  // namespace

TEST_CASE("revoking the running step of a chain ends the chain as REVOKED", "[unit][graph][revoke]") {
  workflow_graph g{chain(task("a"), task("b"))};
  auto ready = dispatch(g, g.start());
  REQUIRE(ready.size() == 1);
  std::vector<node_id> revoked;
  graph_effects fx;
  REQUIRE(g.revoke(ready[0], revoked_error, revoked, fx) == apply_result::applied);
  CHECK(revoked == std::vector<node_id>{ready[0]});
  CHECK(fx.ready.empty());
  CHECK(fx.finished);
  CHECK(g.node(ready[0]).state == node_state::revoked);
  CHECK(g.root().state == node_state::revoked);
  CHECK(g.root().error.as_map().at("task") == value("a"));
  CHECK(g.root().error.as_map().at("type") == value("revoked"));
  // Its late outcome changes nothing.
  graph_effects late;
  CHECK(g.succeed(ready[0], 1, 1, late) == apply_result::duplicate);
}

TEST_CASE("a step revoked while it waits never runs, and its chain stops there", "[unit][graph][revoke]") {
  workflow_graph g{chain(task("a"), task("b"), task("c"))};
  auto first = dispatch(g, g.start());
  node_id b = first[0] + 1;
  REQUIRE(g.node(b).sig->task() == "b");
  std::vector<node_id> revoked;
  graph_effects fx;
  REQUIRE(g.revoke(b, revoked_error, revoked, fx) == apply_result::applied);
  CHECK(revoked == std::vector<node_id>{b});
  CHECK_FALSE(fx.finished);  // `a` still runs
  graph_effects after_a;
  REQUIRE(g.succeed(first[0], 1, 1, after_a) == apply_result::applied);
  CHECK(after_a.ready.empty());  // `b` is not dispatched, `c` not reached
  CHECK(after_a.finished);
  CHECK(g.root().state == node_state::revoked);
  CHECK(g.node(b + 1).state == node_state::pending);
}

TEST_CASE("a revoked group member leaves the others running and ends the group as REVOKED",
          "[unit][graph][revoke]") {
  workflow_graph g{group(task("a"), task("b"), task("c"))};
  auto ready = dispatch(g, g.start());
  std::vector<node_id> revoked;
  graph_effects fx;
  REQUIRE(g.revoke(ready[1], revoked_error, revoked, fx) == apply_result::applied);
  CHECK_FALSE(fx.finished);
  graph_effects rest;
  g.succeed(ready[0], 1, 1, rest);
  CHECK_FALSE(rest.finished);
  g.succeed(ready[2], 1, 3, rest);
  CHECK(rest.finished);
  CHECK(g.root().state == node_state::revoked);
  CHECK(g.root().error.as_map().at("task") == value("b"));
}

TEST_CASE("a revoked chord header member fails the chord, whose body never runs", "[unit][graph][revoke]") {
  workflow_graph g{chord({task("a"), task("b")}, task("body"))};
  auto ready = dispatch(g, g.start());
  REQUIRE(ready.size() == 2);
  std::vector<node_id> revoked;
  graph_effects fx;
  REQUIRE(g.revoke(ready[0], revoked_error, revoked, fx) == apply_result::applied);
  graph_effects rest;
  g.succeed(ready[1], 1, 2, rest);
  CHECK(rest.ready.empty());
  CHECK(rest.finished);
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("type") == value("revoked"));
  CHECK(g.root().error.as_map().at("node") == value(ready[0]));
}

TEST_CASE("revoking a composite revokes every unfinished leaf under it, and only those", "[unit][graph][revoke]") {
  // group(chain(x, group(a, chain(b, c))), y): revoke the inner group while
  // a has finished, b runs, c waits behind b, and y runs beside it all. (A
  // group ending a chain stays a group; one followed by a step would be a
  // chord whose body is under it too.)
  workflow_graph g{group(chain(task("x"), group(task("a"), chain(task("b"), task("c")))), task("y"))};
  auto first = dispatch(g, g.start());
  REQUIRE(first.size() == 2);
  bool x_first = g.node(first[0]).sig->task() == "x";
  node_id x = x_first ? first[0] : first[1];
  node_id y = x_first ? first[1] : first[0];
  REQUIRE(g.node(y).sig->task() == "y");
  graph_effects fx;
  g.succeed(x, 1, 0, fx);
  auto members = dispatch(g, fx);
  REQUIRE(members.size() == 2);
  graph_effects a_done;
  g.succeed(members[0], 1, 1, a_done);  // `a` finished before the revoke
  node_id inner_group = g.node(members[0]).parent;
  std::vector<node_id> revoked;
  graph_effects rv;
  REQUIRE(g.revoke(inner_group, revoked_error, revoked, rv) == apply_result::applied);
  // b (running) and c (waiting behind it); not a, which succeeded, nor y.
  CHECK(revoked == std::vector<node_id>{members[1], static_cast<node_id>(members[1] + 1)});
  CHECK(g.node(members[0]).state == node_state::success);
  CHECK_FALSE(rv.finished);  // y still runs
  graph_effects y_done;
  REQUIRE(g.succeed(y, 1, 2, y_done) == apply_result::applied);
  CHECK(y_done.finished);
  CHECK(g.root().state == node_state::revoked);
}

TEST_CASE("revoking what already finished, or a node that does not exist, changes nothing",
          "[unit][graph][revoke]") {
  workflow_graph g{chain(task("a"), task("b"))};
  auto a = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(a[0], 1, 1, fx);
  std::vector<node_id> revoked;
  graph_effects rv;
  CHECK(g.revoke(a[0], revoked_error, revoked, rv) == apply_result::duplicate);
  CHECK(g.revoke(99, revoked_error, revoked, rv) == apply_result::unknown_node);
  CHECK(g.revoke(-1, revoked_error, revoked, rv) == apply_result::unknown_node);
  CHECK(revoked.empty());
  CHECK_FALSE(rv.finished);
}
