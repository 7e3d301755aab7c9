// map, starmap and chunks (canvas_map.cpp): what they expand into, how the
// normalization rules treat them, the workflow-file form and its errors,
// and how a worker runs one chunk (detail::run_chunk).

#include "trellis/canvas.hpp"
#include "trellis/detail/canvas_fields.hpp"
#include "trellis/error.hpp"
#include "trellis/task.hpp"
#include "trellis/value.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using trellis::canvas;
using trellis::value;

namespace {

value json(const std::string& text) {
  auto v = trellis::value_from_json(text);
  REQUIRE(v);
  return *v;
}

/// The canvas of a workflow file, which must parse.
canvas parse(const std::string& text, const trellis::canvas_limits& limits = {}) {
  auto c = trellis::canvas_from_value(json(text), limits);
  INFO((c ? std::string{} : to_string(c.error())));
  REQUIRE(c);
  return *c;
}

/// The message of a workflow file that must not parse.
std::string refusal(const std::string& text, const trellis::canvas_limits& limits = {}) {
  auto c = trellis::canvas_from_value(json(text), limits);
  REQUIRE_FALSE(c);
  return c.error().message();
}

/// The arguments of one chunk message: one list (of argument lists). Spelt
/// out, since `value::array{value::array{...}}` would copy the inner list.
value::array chunk_args(value::array calls) {
  value::array args;
  args.emplace_back(std::move(calls));
  return args;
}

}  // namespace

TEST_CASE("map, starmap and chunks expand into a group of immutable task messages in item order",
          "[unit][canvas][fanout]") {
  auto m = trellis::map("mul", {1, 2, 3}, {10});
  REQUIRE(m.type() == canvas::kind::group);
  REQUIRE(m.children().size() == 3);
  CHECK(to_json(value(m.children()[1].sig().args())) == "[2,10]");
  CHECK(m.children()[1].sig().options().immutable);
  CHECK_FALSE(m.children()[1].sig().options().chunk);
  REQUIRE(m.fanout() != nullptr);
  CHECK(to_json(m) == R"({"map":{"args":[10],"items":[1,2,3],"task":"mul"}})");

  auto s = trellis::starmap("add", {value::array{1, 2}, value::array{3, 4}});
  REQUIRE(s.children().size() == 2);
  CHECK(to_json(value(s.children()[1].sig().args())) == "[3,4]");

  auto c = trellis::chunks("add", {value::array{1, 1}, value::array{2, 2}, value::array{3, 3}}, 2);
  REQUIRE(c.children().size() == 2);
  CHECK(c.children()[0].sig().options().chunk);
  CHECK(to_json(value(c.children()[0].sig().args())) == "[[[1,1],[2,2]]]");
  CHECK(to_json(value(c.children()[1].sig().args())) == "[[[3,3]]]");
  CHECK(c.task_count() == 2);

  CHECK(trellis::map("identity", {}).children().empty());
  CHECK(trellis::chunks("add", {}, 5).children().empty());
}

TEST_CASE("the builders refuse what cannot run with usage_error", "[unit][canvas][fanout]") {
  CHECK_THROWS_AS(trellis::chunks("add", {value::array{1, 1}}, 0), trellis::usage_error);
  CHECK_THROWS_WITH(trellis::starmap("add", {value::array{1, 1}, 5}),
                    "starmap 'add': items[1] must be an array of arguments, got 5");
  CHECK_THROWS_AS(trellis::chunks("add", {3}, 1), trellis::usage_error);
  CHECK_THROWS_AS(trellis::map("", {1}), trellis::usage_error);
}

TEST_CASE("a map is one list to the normalization rules: not flattened, unrolled, dropped or made a header",
          "[unit][canvas][fanout]") {
  // In a group it stays one member (a list), where a group would be spliced in.
  auto g = trellis::group(trellis::map("identity", {1, 2}), trellis::signature("add", {1, 1}));
  REQUIRE(g.children().size() == 2);
  CHECK(g.children()[0].fanout() != nullptr);
  // A one-item map in a chain stays a group of one (a one-member group would unroll).
  auto one = trellis::chain(trellis::signature("identity", {5}), trellis::map("mul", {2}, {3}));
  REQUIRE(one.type() == canvas::kind::chain);
  CHECK(one.children()[1].type() == canvas::kind::group);
  // An empty map ending a chain is kept (an empty group would be dropped).
  auto empty = trellis::chain(trellis::signature("identity", {5}), trellis::map("mul", {}));
  REQUIRE(empty.type() == canvas::kind::chain);
  CHECK(empty.children().size() == 2);
  // Followed by a step, it stays a chain step (a group would become a chord header).
  auto then = trellis::chain(trellis::map("mul", {1, 2}, {10}), trellis::signature("xsum"));
  REQUIRE(then.type() == canvas::kind::chain);
  CHECK(then.children()[0].fanout() != nullptr);
  // As a chord header it is one member: the body gets a list holding its list.
  auto ch = trellis::chord(trellis::map("identity", {1, 2}), trellis::signature("identity"));
  CHECK(ch.children().size() == 1);
}

TEST_CASE("the workflow-file keys read into the same canvas and write back unchanged", "[unit][canvas][fanout]") {
  auto file = R"({"chain":[{"task":"identity","args":[[1,2,3]],"kwargs":{}},)"
              R"({"map":{"task":"mul","items":[1,2,3],"args":[10],"kwargs":{"y":1},"options":{"queue":"q"}}},)"
              R"({"starmap":{"task":"add","items":[[1,2]]}},)"
              R"({"chunks":{"task":"add","items":[[1,2],[3,4],[5,6]],"size":2}}]})";
  auto c = parse(file);
  REQUIRE(c.children().size() == 4);
  const auto& m = c.children()[1];
  REQUIRE(m.children().size() == 3);
  CHECK(m.children()[0].sig().options().queue == std::optional<std::string>{"q"});
  CHECK(m.children()[0].sig().options().immutable);
  CHECK(c.children()[3].children().size() == 2);
  CHECK(c.task_count() == 1 + 3 + 1 + 2);
  auto written = to_json(c);
  CHECK(to_json(parse(written)) == written);
  CHECK(written.find(R"({"map":)") != std::string::npos);
  // An API-built map reads back into the same value.
  auto api = trellis::chunks("add", {value::array{1, 1}, value::array{2, 2}, value::array{3, 3}}, 2);
  CHECK(to_json(parse(to_json(api))) == to_json(api));
}

TEST_CASE("a map, starmap or chunks that breaks the shape is refused naming the place", "[unit][canvas][fanout]") {
  struct bad_case {
    const char* text;
    const char* message;
  };
  const std::vector<bad_case> cases{
      {R"({"map":[1]})", "$.map: must be a map, got array"},
      {R"({"map":{"items":[1]}})", "$.map: missing key 'task'"},
      {R"({"map":{"task":"a","items":3}})", "$.map.items: must be an array, got 3"},
      {R"({"map":{"task":"a","items":[],"size":3}})", "$.map: unknown key 'size'"},
      {R"({"starmap":{"task":"a","items":[],"args":[]}})", "$.starmap: unknown key 'args'"},
      {R"({"starmap":{"task":"a","items":[[1],2]}})",
       "$.starmap: $.starmap.items[1] must be an array of arguments, got 2"},
      {R"({"chunks":{"task":"a","items":[]}})", "$.chunks: missing key 'size'"},
      {R"({"chunks":{"task":"a","items":[],"size":0}})",
       "$.chunks.size: must be an integer from 1 to 2147483647, got 0"},
      {R"({"chunks":{"task":"a","items":[],"size":"2"}})",
       R"($.chunks.size: must be an integer from 1 to 2147483647, got "2")"},
      {R"({"map":{"task":"a","items":[1],"options":{"chunk":true}}})",
       "$.map: option 'chunk' is set by chunks itself and cannot be given"},
      {R"({"group":[{"map":{"task":"","items":[1]}}]})", R"($.group[0].map.task: must be a non-empty string, got "")"},
  };
  for (const auto& bad : cases) {
    INFO(bad.text);
    CHECK(refusal(bad.text) == bad.message);
  }
}

TEST_CASE("a map counts one task per item and a chunks one per chunk against max_tasks", "[unit][canvas][fanout]") {
  trellis::canvas_limits limits;
  limits.max_tasks = 4;
  CHECK(parse(R"({"group":[{"task":"a"},{"map":{"task":"a","items":[1,2,3]}}]})", limits).task_count() == 4);
  CHECK(refusal(R"({"group":[{"task":"a"},{"map":{"task":"a","items":[1,2,3,4]}}]})", limits) ==
        "$.group[1].map: the workflow has more than max_tasks (4) tasks");
  CHECK(parse(R"({"chunks":{"task":"a","items":[[1],[2],[3],[4],[5],[6],[7],[8]],"size":2}})", limits).task_count() ==
        4);
  CHECK(refusal(R"({"chunks":{"task":"a","items":[[1],[2],[3],[4],[5],[6],[7],[8],[9]],"size":2}})", limits) ==
        "$.chunks: the workflow has more than max_tasks (4) tasks");
}

TEST_CASE("a member whose arguments are too large is refused as payload_too_large", "[unit][canvas][fanout]") {
  trellis::canvas_limits limits;
  limits.max_argument_bytes = 64;
  auto c = trellis::canvas_from_value(
      json(R"({"map":{"task":"a","items":["short",")" + std::string(100, 'x') + R"("]}})"), limits);
  REQUIRE_FALSE(c);
  CHECK(c.error().code() == trellis::errc::payload_too_large);
  CHECK(c.error().message().rfind("$.map: the arguments of one 'a' are", 0) == 0);
}

TEST_CASE("check_tasks_known looks inside map, starmap and chunks", "[unit][canvas][fanout]") {
  trellis::task_registry tasks;
  tasks.add("add", [](trellis::task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  CHECK(trellis::check_tasks_known(json(R"({"chain":[{"task":"add"},{"chunks":{"task":"add","items":[],"size":1}}]})"),
                                   tasks));
  auto r =
      trellis::check_tasks_known(json(R"({"chain":[{"task":"add"},{"starmap":{"task":"ad","items":[]}}]})"), tasks);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == trellis::errc::unknown_task);
  CHECK(r.error().message() == "$.chain[1].starmap: unknown task 'ad'");
}

TEST_CASE("a chunk calls the handler once per argument list and returns their results in order",
          "[unit][canvas][fanout]") {
  trellis::task_registry tasks;
  tasks.add("add",
            [](trellis::task_context& ctx, std::int64_t x, std::int64_t y) -> trellis::task_result<std::int64_t> {
              if (x < 0) {
                return ctx.retry_later("negative");
              }
              return x + y;
            });
  const auto& handler = tasks.find("add")->handler;
  trellis::task_context ctx{"add", "wf", 1, 1, "wf/1", {}};

  auto r = trellis::detail::run_chunk(handler, ctx, chunk_args({value::array{1, 2}, value::array{3, 4}}));
  REQUIRE_FALSE(r.is_retry());
  CHECK(to_json(r.result()) == "[3,7]");
  CHECK(to_json(trellis::detail::run_chunk(handler, ctx, chunk_args({})).result()) == "[]");
  // One call's retry request is the whole chunk's.
  CHECK(trellis::detail::run_chunk(handler, ctx, chunk_args({value::array{1, 2}, value::array{-1, 0}})).is_retry());
  // Another shape is refused, as bad arguments are.
  CHECK_THROWS_AS(trellis::detail::run_chunk(handler, ctx, chunk_args({1, 2})), trellis::task_rejected);
  CHECK_THROWS_AS(trellis::detail::run_chunk(handler, ctx, {1, 2}), trellis::task_rejected);
  CHECK_THROWS_AS(trellis::detail::run_chunk(handler, ctx, chunk_args({value::array{"x", 2}})), trellis::task_rejected);
}

TEST_CASE("a map, starmap or chunks without items maps over its input when it arrives", "[unit][canvas][fanout]") {
  auto m =
      parse(R"({"chain":[{"task":"identity","args":[[1,2,3]]},{"map":{"task":"mul","args":[10]}},{"task":"xsum"}]})");
  REQUIRE(m.children().size() == 3);
  const auto& deferred = m.children()[1];
  CHECK(deferred.over_input());
  CHECK(deferred.children().empty());
  CHECK(to_json(deferred) == R"({"map":{"args":[10],"task":"mul"}})");
  CHECK(to_json(trellis::map_input("mul", {10})) == to_json(deferred));
  CHECK_FALSE(trellis::map("mul", {1}).over_input());
  CHECK(to_json(parse(to_json(m))) == to_json(m));

  auto members = trellis::detail::expand_over_input(deferred, json("[1,2,3]"));
  REQUIRE(members);
  REQUIRE(members->children().size() == 3);
  CHECK(to_json(value(members->children()[2].sig().args())) == "[3,10]");
  CHECK(to_json(*members) == R"({"map":{"args":[10],"items":[1,2,3],"task":"mul"}})");

  auto not_a_list = trellis::detail::expand_over_input(deferred, value(5));
  REQUIRE_FALSE(not_a_list);
  CHECK(not_a_list.error().message() == "map_input_not_a_list: the input of mul's map must be a list, got 5");
  auto star = trellis::detail::expand_over_input(trellis::starmap_input("add"), json("[[1,2],3]"));
  REQUIRE_FALSE(star);
  CHECK(star.error().message().rfind("map_input_not_a_list: input[1] must be an array of arguments", 0) == 0);
  auto chunked = trellis::detail::expand_over_input(trellis::chunks_input("add", 2), json("[[1,2],[3,4],[5,6]]"));
  REQUIRE(chunked);
  CHECK(chunked->children().size() == 2);
  // kwargs and options given to the map reach every member.
  auto with_options = parse(R"({"map":{"task":"add","kwargs":{"y":1},"options":{"queue":"q"}}})");
  auto expanded = trellis::detail::expand_over_input(with_options, json("[1]"));
  REQUIRE(expanded);
  CHECK(expanded->children()[0].sig().options().queue == std::optional<std::string>{"q"});
  CHECK(to_json(value(expanded->children()[0].sig().kwargs())) == R"({"y":1})");
  CHECK_THROWS_AS(trellis::chunks_input("add", 0), trellis::usage_error);
}
