// Callbacks (link, link_error) in the graph: which run, with what, how the
// workflow's state and its finish relate to them, and that a restore
// replays them to the same ids. Their workflow-file form is tested here too.

#include "support/graph_steps.hpp"

#include "trellis/task.hpp"
#include "trellis/workflow_graph.hpp"

#include <catch2/catch.hpp>

using namespace trellis;
using trellis::detail::apply_result;
using trellis::detail::callback_kind;
using trellis::detail::graph_effects;
using trellis::detail::known_outcome;
using trellis::detail::node_id;
using trellis::detail::workflow_graph;
using trellis::test::dispatch;

namespace {

canvas task(const char* name, value::array args = {}) { return canvas(signature(name, std::move(args))); }

/// The id of the only leaf named `name`.
node_id leaf(const workflow_graph& g, const std::string& name) {
  node_id found = -1;
  for (node_id i = 0; static_cast<std::size_t>(i) < g.size(); ++i) {
    if (g.node(i).kind == canvas::kind::task && g.node(i).sig->task() == name) {
      REQUIRE(found < 0);
      found = i;
    }
  }
  REQUIRE(found >= 0);
  return found;
}

value error_type(const workflow_graph& g, node_id id) { return g.node(id).error.as_map().at("type"); }

}  // namespace

TEST_CASE("a link runs after a success with the result; the workflow finishes after it", "[unit][graph][callbacks]") {
  workflow_graph g{task("add", {2, 2}).link(task("log", {"done"})).link_error(task("alert")), "wf-1"};
  auto ready = dispatch(g, g.start());
  REQUIRE(ready == std::vector<node_id>{0});
  // Ids: the step, then its links, then its link_errors.
  CHECK(g.node(1).callback == callback_kind::link);
  CHECK(g.node(2).callback == callback_kind::link_error);
  CHECK(g.node(0).links == std::vector<node_id>{1});
  CHECK(g.node(0).link_errors == std::vector<node_id>{2});

  graph_effects fx;
  REQUIRE(g.succeed(0, 1, 4, fx) == apply_result::applied);
  CHECK_FALSE(fx.finished);  // the main canvas ended; its link has not
  CHECK_FALSE(g.is_finished());
  CHECK(g.root().state == node_state::success);
  REQUIRE(fx.ready == std::vector<node_id>{1});
  CHECK(g.arguments_of(1) == value::array{4, "done"});
  // The link_error will not run: it ends at once, and says why.
  CHECK(fx.skipped == std::vector<node_id>{2});
  CHECK(g.node(2).state == node_state::revoked);
  CHECK(error_type(g, 2) == value(detail::callback_not_run));
  dispatch(g, fx);

  graph_effects fx2;
  // A failing link does not change the workflow's state or result.
  REQUIRE(g.fail(1, 1, value::map{{"type", "boom"}, {"message", "no"}}, fx2) == apply_result::applied);
  CHECK(fx2.finished);
  CHECK(g.is_finished());
  CHECK(g.root().state == node_state::success);
  CHECK(g.root().result == value(4));
}

TEST_CASE("a link_error runs after a failure with the error map, workflow included", "[unit][graph][callbacks]") {
  workflow_graph g{chain(task("a"), task("b")).link(task("ok")).link_error(task("on_error", {"extra"})), "wf-2"};
  auto ready = dispatch(g, g.start());
  auto a = leaf(g, "a");
  REQUIRE(ready == std::vector<node_id>{a});
  graph_effects fx;
  g.fail(a, 1, value::map{{"type", "boom"}, {"message", "bad input"}}, fx);
  CHECK_FALSE(fx.finished);
  CHECK(g.root().state == node_state::failure);
  auto on_error = leaf(g, "on_error");
  REQUIRE(fx.ready == std::vector<node_id>{on_error});
  auto args = g.arguments_of(on_error);
  REQUIRE(args.size() == 2);
  const auto& err = args[0].as_map();
  CHECK(err.at("type") == value("boom"));
  CHECK(err.at("message") == value("bad input"));
  CHECK(err.at("task") == value("a"));
  CHECK(err.at("node") == value(a));
  CHECK(err.at("workflow") == value("wf-2"));
  CHECK(args[1] == value("extra"));
  CHECK(g.node(leaf(g, "ok")).state == node_state::revoked);
  dispatch(g, fx);
  graph_effects fx2;
  g.succeed(on_error, 1, "handled", fx2);
  CHECK(fx2.finished);
  // The workflow failed, whatever its link_error did.
  CHECK(g.root().state == node_state::failure);
  CHECK(g.root().error.as_map().at("type") == value("boom"));
}

TEST_CASE("callbacks of steps that never ran end not_run when the workflow ends", "[unit][graph][callbacks]") {
  // b never runs (a fails), so neither of b's callbacks can: they end when
  // the main canvas does, and the workflow finishes then.
  workflow_graph g{chain(task("a"), task("b").link(task("b_ok")).link_error(task("b_err")))};
  auto ready = dispatch(g, g.start());
  graph_effects fx;
  g.fail(ready[0], 1, value::map{{"type", "boom"}, {"message", "x"}}, fx);
  CHECK(fx.finished);
  CHECK(g.is_finished());
  CHECK(fx.ready.empty());
  CHECK(fx.skipped.size() == 2);
  CHECK(error_type(g, leaf(g, "b_ok")) == value(detail::callback_not_run));
  CHECK(error_type(g, leaf(g, "b_err")) == value(detail::callback_not_run));
}

TEST_CASE("a link of a group gets the list; a chord's link gets the body's result", "[unit][graph][callbacks]") {
  SECTION("group") {
    workflow_graph g{group(task("a"), task("b")).link(task("sum"))};
    auto ready = dispatch(g, g.start());
    graph_effects fx;
    g.succeed(ready[1], 1, 2, fx);
    g.succeed(ready[0], 1, 1, fx);
    auto sum = leaf(g, "sum");
    REQUIRE(fx.ready == std::vector<node_id>{sum});
    CHECK(g.arguments_of(sum) == value::array{value::array{1, 2}});
  }
  SECTION("chord") {
    workflow_graph g{chord({task("a"), task("b")}, task("body")).link(task("after"))};
    auto ready = dispatch(g, g.start());
    graph_effects fx;
    g.succeed(ready[0], 1, 1, fx);
    g.succeed(ready[1], 1, 2, fx);
    auto body = dispatch(g, fx);
    graph_effects fx2;
    g.succeed(body[0], 1, 3, fx2);
    auto after = leaf(g, "after");
    REQUIRE(fx2.ready == std::vector<node_id>{after});
    CHECK(g.arguments_of(after) == value::array{3});
  }
}

TEST_CASE("an immutable link and a chain as a link", "[unit][graph][callbacks]") {
  workflow_graph g{task("a").link(canvas(signature("fixed", {7}).immutable())).link(chain(task("x"), task("y")))};
  auto ready = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(ready[0], 1, "r", fx);
  auto fixed = leaf(g, "fixed");
  auto x = leaf(g, "x");
  REQUIRE(fx.ready == std::vector<node_id>{fixed, x});
  CHECK(g.arguments_of(fixed) == value::array{7});
  CHECK(g.arguments_of(x) == value::array{"r"});
  dispatch(g, fx);
  graph_effects fx2;
  g.succeed(fixed, 1, 0, fx2);
  g.succeed(x, 1, "rx", fx2);
  CHECK_FALSE(fx2.finished);  // y, the chain link's second step, still runs
  auto y = leaf(g, "y");
  REQUIRE(fx2.ready == std::vector<node_id>{y});
  CHECK(g.arguments_of(y) == value::array{"rx"});
  dispatch(g, fx2);
  graph_effects fx3;
  g.succeed(y, 1, 0, fx3);
  CHECK(fx3.finished);
  CHECK(g.root().result == value("r"));
}

TEST_CASE("a revoked step runs neither callback; revoking the root revokes a running callback",
          "[unit][graph][callbacks]") {
  SECTION("revoked step") {
    workflow_graph g{chain(task("a").link(task("ok")).link_error(task("err")), task("b"))};
    auto ready = dispatch(g, g.start());
    std::vector<node_id> revoked;
    graph_effects fx;
    REQUIRE(g.revoke(ready[0], value::map{{"type", "revoked"}, {"message", "by request"}}, revoked, fx) ==
            apply_result::applied);
    CHECK(fx.finished);
    CHECK(g.root().state == node_state::revoked);
    CHECK(g.node(leaf(g, "ok")).state == node_state::revoked);
    CHECK(g.node(leaf(g, "err")).state == node_state::revoked);
  }
  SECTION("running callback") {
    workflow_graph g{task("a").link(task("slow"))};
    auto ready = dispatch(g, g.start());
    graph_effects fx;
    g.succeed(ready[0], 1, 1, fx);
    dispatch(g, fx);
    std::vector<node_id> revoked;
    graph_effects fx2;
    REQUIRE(g.revoke(0, value::map{{"type", "revoked"}, {"message", "by request"}}, revoked, fx2) ==
            apply_result::applied);
    CHECK(revoked == std::vector<node_id>{leaf(g, "slow")});
    CHECK(fx2.finished);
    CHECK(g.root().state == node_state::success);  // the main canvas had succeeded
  }
}

TEST_CASE("a link's outcome is once-only and a callback of a callback runs too", "[unit][graph][callbacks]") {
  workflow_graph g{task("a").link(task("l1").link(task("l2")))};
  auto ready = dispatch(g, g.start());
  graph_effects fx;
  g.succeed(ready[0], 1, 1, fx);
  auto l1 = leaf(g, "l1");
  dispatch(g, fx);
  graph_effects fx2;
  REQUIRE(g.succeed(l1, 1, 2, fx2) == apply_result::applied);
  CHECK(g.succeed(l1, 1, 2, fx2) == apply_result::duplicate);
  CHECK_FALSE(fx2.finished);
  auto l2 = leaf(g, "l2");
  REQUIRE(fx2.ready == std::vector<node_id>{l2});
  CHECK(g.arguments_of(l2) == value::array{2});
  dispatch(g, fx2);
  graph_effects fx3;
  g.succeed(l2, 1, 3, fx3);
  CHECK(fx3.finished);
  CHECK(g.root().result == value(1));
}

TEST_CASE("a restore replays callbacks to the same ids and leaves a pending one ready once",
          "[unit][graph][callbacks][restore]") {
  auto flow = chain(task("a"), task("b")).link(task("notify")).link_error(task("alert"));
  workflow_graph live{flow};
  auto ready = dispatch(live, live.start());
  graph_effects fx;
  live.succeed(ready[0], 1, 1, fx);
  ready = dispatch(live, fx);
  graph_effects fx2;
  live.succeed(ready[0], 1, 2, fx2);
  auto notify = leaf(live, "notify");
  REQUIRE(fx2.ready == std::vector<node_id>{notify});

  // The stored rows: a and b succeeded, alert was skipped; notify has none yet.
  workflow_graph restored{flow};
  auto a = leaf(restored, "a");
  auto b = leaf(restored, "b");
  auto alert = leaf(restored, "alert");
  CHECK(leaf(restored, "notify") == notify);
  auto rfx = restored.start([&](node_id id) -> std::optional<known_outcome> {
    if (id == a) {
      return known_outcome{node_state::success, 1, 1, {}, 0};
    }
    if (id == b) {
      return known_outcome{node_state::success, 1, 2, {}, 0};
    }
    if (id == alert) {
      return known_outcome{node_state::revoked, 0, {}, live.node(alert).error, 0};
    }
    return std::nullopt;
  });
  CHECK(rfx.ready == std::vector<node_id>{notify});
  CHECK(restored.arguments_of(notify) == value::array{2});
  CHECK_FALSE(rfx.finished);
  dispatch(restored, rfx);
  graph_effects fx3;
  REQUIRE(restored.succeed(notify, 1, "sent", fx3) == apply_result::applied);
  CHECK(fx3.finished);
  CHECK(restored.root().result == value(2));
}

TEST_CASE("callbacks in the workflow file: on a signature and beside a composite", "[unit][canvas][callbacks]") {
  auto doc = value_from_json(R"({"chain": [{"task": "a", "options": {"link": {"task": "l"}, "queue": "q"}},
                                     {"task": "b"}],
                           "options": {"link_error": [{"task": "e1"}, {"group": [{"task": "e2"}]}]}})");
  REQUIRE(doc);
  auto c = canvas_from_value(*doc);
  REQUIRE(c);
  REQUIRE(c->type() == canvas::kind::chain);
  CHECK(c->link_errors().size() == 2);
  CHECK(c->links().empty());
  const auto& a = c->children().front();
  CHECK(a.sig().options().queue == std::optional<std::string>{"q"});
  REQUIRE(a.links().size() == 1);
  CHECK(a.links().front().sig().task() == "l");
  CHECK(c->task_count() == 5);
  // Written back and read again, the same canvas.
  auto again = canvas_from_value(to_value(*c));
  REQUIRE(again);
  CHECK(to_json(*again) == to_json(*c));

  SECTION("refused") {
    for (const char* bad : {
             R"({"chain": [{"task": "a"}], "options": {"queue": "q"}})",
             R"({"task": "a", "options": {"link": 3}})",
             R"({"task": "a", "options": {"link": [{"tusk": "x"}]}})",
             R"({"group": [{"task": "a"}], "options": []})",
         }) {
      auto v = value_from_json(bad);
      REQUIRE(v);
      auto parsed = canvas_from_value(*v);
      CHECK_FALSE(parsed);
      if (!parsed) {
        CHECK(parsed.error().code() == errc::invalid_workflow);
        CHECK(parsed.error().message().find("$") == 0);
      }
    }
    // Built as JSON text: GCC 12 reports a false -Wmaybe-uninitialized for
    // nested map temporaries.
    std::string many = R"({"task": "a", "options": {"link": [)";
    for (std::size_t i = 0; i <= max_callbacks; ++i) {
      many += std::string{i == 0 ? "" : ","} + R"({"task": "x"})";
    }
    many += "]}}";
    auto doc_many = value_from_json(many);
    REQUIRE(doc_many);
    auto parsed = canvas_from_value(*doc_many);
    CHECK_FALSE(parsed);
  }
}

TEST_CASE("a composite with callbacks is not flattened or unrolled", "[unit][canvas][callbacks]") {
  auto inner = chain(task("a"), task("b")).link(task("l"));
  auto outer = chain(inner, task("c"));
  REQUIRE(outer.children().size() == 2);
  CHECK(outer.children().front().links().size() == 1);
  auto g = group(group(task("a"), task("b")).link(task("l")), task("c"));
  CHECK(g.children().size() == 2);
  // A group with callbacks followed by a step stays a chain step: the step
  // still gets the group's list.
  auto ch = chain(group(task("a"), task("b")).link(task("l")), task("c"));
  CHECK(ch.type() == canvas::kind::chain);
}

TEST_CASE("an unknown task in a callback is named before anything runs", "[unit][canvas][callbacks]") {
  task_registry tasks;
  tasks.add("a", [](task_context&) {});
  auto doc = value_from_json(R"({"chain": [{"task": "a", "options": {"link": [{"task": "a"}, {"task": "nope"}]}}],
                                 "options": {"link_error": {"task": "a"}}})");
  REQUIRE(doc);
  auto known = check_tasks_known(*doc, tasks);
  REQUIRE_FALSE(known);
  CHECK(known.error().code() == errc::unknown_task);
  CHECK(known.error().message() == "$.chain[0].options.link[1]: unknown task 'nope'");
  auto doc2 = value_from_json(R"({"group": [{"task": "a"}], "options": {"link_error": {"task": "gone"}}})");
  REQUIRE(doc2);
  auto known2 = check_tasks_known(*doc2, tasks);
  REQUIRE_FALSE(known2);
  CHECK(known2.error().message() == "$.options.link_error: unknown task 'gone'");
}
