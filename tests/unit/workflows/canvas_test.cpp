#include "trellis/canvas.hpp"

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using trellis::canvas;
using trellis::chain;
using trellis::chord;
using trellis::group;
using trellis::signature;
using trellis::value;

namespace {

/// A signature with no arguments, the leaf of most shapes below.
signature t(const char* name) { return signature(name); }

/// Expected JSON written tersely: `@a` stands for the task object of a bare
/// signature named `a`. The text is re-printed through the value printer so key
/// order and spacing in the test source do not matter.
std::string expect_json(const std::string& terse) {
  std::string text;
  for (std::size_t i = 0; i < terse.size(); ++i) {
    if (terse[i] != '@') {
      text += terse[i];
      continue;
    }
    std::string name;
    while (i + 1 < terse.size() && (std::isalnum(static_cast<unsigned char>(terse[i + 1])) != 0 ||
                                    terse[i + 1] == '_' || terse[i + 1] == '.')) {
      name += terse[++i];
    }
    text += R"({"task":")" + name + R"(","args":[],"kwargs":{}})";
  }
  auto v = trellis::value_from_json(text);
  REQUIRE(v.has_value());
  return to_json(*v);
}

value parse_json(const std::string& text) {
  auto v = trellis::value_from_json(text);
  REQUIRE(v.has_value());
  return *v;
}

/// The error message of parsing `text` as a workflow file; fails the test when
/// the parse succeeds or reports another code.
std::string rejection(const std::string& text, const trellis::canvas_limits& limits = {}) {
  auto c = trellis::canvas_from_value(parse_json(text), limits);
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code() == trellis::errc::invalid_workflow);
  return c.error().message();
}

}  // namespace

// -- signatures --------------------------------------------------------------

TEST_CASE("a signature is a task canvas printed with its args and kwargs and no options", "[unit][canvas]") {
  canvas c = signature("orders.charge", {value("A-17"), value(3)}).kwarg("currency", "EUR");
  REQUIRE(c.is_task());
  CHECK(c.sig().task() == "orders.charge");
  CHECK(to_json(c) == expect_json(R"({"task":"orders.charge","args":["A-17",3],"kwargs":{"currency":"EUR"}})"));
}

TEST_CASE("signature setters return a modified copy and leave the original alone", "[unit][canvas]") {
  auto base = signature("a", {value(1)});
  auto changed = base.immutable()
                     .retry(trellis::retry_policy::fixed(3, 250ms))
                     .idempotency_key("order-17")
                     .queue("payments")
                     .countdown(5ms)
                     .expires(60000ms)
                     .time_limit(2000ms)
                     .priority(7)
                     .kwarg("k", true);
  CHECK_FALSE(base.options().immutable);
  CHECK_FALSE(base.options().retry.has_value());
  CHECK_FALSE(base.options().queue.has_value());
  CHECK(base.kwargs().empty());

  const auto& o = changed.options();
  CHECK(o.immutable);
  REQUIRE(o.retry.has_value());
  CHECK(*o.retry == trellis::retry_policy::fixed(3, 250ms));
  CHECK(o.idempotency_key == std::optional<std::string>{"order-17"});
  CHECK(o.queue == std::optional<std::string>{"payments"});
  CHECK(o.countdown == std::optional<std::chrono::milliseconds>{5ms});
  CHECK(o.expires == std::optional<std::chrono::milliseconds>{60000ms});
  CHECK(o.time_limit == std::optional<std::chrono::milliseconds>{2000ms});
  CHECK(o.priority == std::optional<int>{7});
  CHECK(changed.kwargs().at("k") == value(true));
  CHECK(changed.args() == base.args());
  CHECK(changed.immutable(false).options().immutable == false);
}

TEST_CASE("every set option appears in the workflow-file shape under its documented key", "[unit][canvas]") {
  auto sig = signature("a", {value(1)})
                 .immutable()
                 .retry(trellis::retry_policy::exponential(4, 100ms, 5000ms))
                 .idempotency_key("k-1")
                 .queue("q")
                 .countdown(10ms)
                 .expires(20ms)
                 .time_limit(30ms)
                 .priority(0);
  CHECK(to_json(sig) == expect_json(R"({"task":"a","args":[1],"kwargs":{},"options":{
      "immutable":true,
      "retry":{"max_retries":4,"countdown_ms":100,"backoff":"exponential","backoff_max_ms":5000,"jitter":true},
      "idempotency_key":"k-1","queue":"q","countdown_ms":10,"expires_ms":20,"time_limit_ms":30,"priority":0}})"));

  SECTION("a fixed policy prints its backoff as \"fixed\"") {
    auto fixed = signature("a").retry(trellis::retry_policy::fixed(2, 50ms));
    CHECK(to_json(fixed) == expect_json(R"({"task":"a","args":[],"kwargs":{},"options":{
        "retry":{"max_retries":2,"countdown_ms":50,"backoff":"fixed","backoff_max_ms":60000,"jitter":false}}})"));
  }
  SECTION("immutable(false) is the default and is not printed") {
    CHECK(to_json(signature("a").immutable(false)) == expect_json("@a"));
  }
}

TEST_CASE("signature setters reject values no workflow file could carry", "[unit][canvas]") {
  auto s = signature("a");
  CHECK_THROWS_AS(s.priority(10), trellis::usage_error);
  CHECK_THROWS_AS(s.priority(-1), trellis::usage_error);
  CHECK_THROWS_AS(s.time_limit(0ms), trellis::usage_error);
  CHECK_THROWS_AS(s.countdown(-1ms), trellis::usage_error);
  CHECK_THROWS_AS(s.expires(-1ms), trellis::usage_error);
  CHECK_THROWS_AS(s.queue(""), trellis::usage_error);
  CHECK_THROWS_AS(s.idempotency_key(""), trellis::usage_error);
  CHECK_THROWS_AS(s.retry(trellis::retry_policy::fixed(-1, 10ms)), trellis::usage_error);
  CHECK_THROWS_AS(s.retry(trellis::retry_policy::fixed(1, -10ms)), trellis::usage_error);
  CHECK_NOTHROW(s.priority(0).priority(9).time_limit(1ms).countdown(0ms).expires(0ms));
}

TEST_CASE("a canvas cannot be made from a signature without a task name", "[unit][canvas]") {
  CHECK_THROWS_AS(canvas(signature()), trellis::usage_error);
}

TEST_CASE("sig() is only for tasks and body() only for chords", "[unit][canvas]") {
  auto g = group(t("a"), t("b"));
  CHECK_THROWS_AS(g.sig(), trellis::usage_error);
  CHECK_THROWS_AS(g.body(), trellis::usage_error);
  CHECK_THROWS_AS(canvas(t("a")).body(), trellis::usage_error);
  auto c = chord(g, t("c"));
  CHECK(c.body().sig().task() == "c");
  CHECK_THROWS_AS(c.sig(), trellis::usage_error);
}

// -- normalization -----------------------------------------------------------

TEST_CASE("the normalization rules quoted in docs/canvas.md hold", "[unit][canvas]") {
  // [canvas-normalization]
  auto a = signature("a");
  auto b = signature("b");
  auto c = signature("c");
  auto d = signature("d");
  auto e = signature("e");
  CHECK(to_json(group(group(a, b), c)) == to_json(group(a, b, c)));
  CHECK(to_json(chain(chain(a, b), c)) == to_json(chain(a, b, c)));
  CHECK(to_json(chain(a, group(b), c)) == to_json(chain(a, b, c)));
  CHECK(to_json(chain(a, group(b, c), d, e)) == to_json(chain(a, chord(group(b, c), d), e)));
  CHECK(to_json(chain(group(a, b))) == to_json(group(a, b)));
  CHECK(to_json(chain(a, group())) == to_json(canvas(a)));
  CHECK(to_json(group(chain(a, group(b, c)))) == to_json(chain(a, group(b, c))));
  CHECK(to_json(chord(std::vector<canvas>{group(a, b), c}, d)) == to_json(chord(group(a, b, c), d)));
  // [canvas-normalization]
}

TEST_CASE("groups nested in a group flatten into it, at any depth", "[unit][canvas]") {
  CHECK(to_json(group(group(t("a"), t("b")), t("c"))) == expect_json(R"({"group":[@a,@b,@c]})"));
  // Celery: test_nested_group.
  CHECK(to_json(group(t("a"), group(t("b"), group(t("c"), t("d"))))) == expect_json(R"({"group":[@a,@b,@c,@d]})"));
  // Celery: test_nested_group_group.
  CHECK(to_json(group(group(t("a"), t("b")))) == expect_json(R"({"group":[@a,@b]})"));
  CHECK(to_json(group(group(), t("a"), group())) == expect_json(R"({"group":[@a]})"));
}

TEST_CASE("an empty group is allowed and a one-member group outside a chain stays a group", "[unit][canvas]") {
  CHECK(to_json(group()) == expect_json(R"({"group":[]})"));
  CHECK(to_json(group(std::vector<canvas>{})) == expect_json(R"({"group":[]})"));
  CHECK(to_json(group(t("a"))) == expect_json(R"({"group":[@a]})"));
  CHECK(group(t("a")).type() == canvas::kind::group);
}

TEST_CASE("chains nested in a chain flatten into it, at any depth", "[unit][canvas]") {
  CHECK(to_json(chain(chain(t("a"), t("b")), t("c"))) == expect_json(R"({"chain":[@a,@b,@c]})"));
  CHECK(to_json(chain(t("a"), chain(t("b"), chain(t("c"), t("d"))))) == expect_json(R"({"chain":[@a,@b,@c,@d]})"));
}

TEST_CASE("an empty chain is a usage error", "[unit][canvas]") {
  CHECK_THROWS_AS(chain(std::vector<canvas>{}), trellis::usage_error);
  CHECK_THROWS_AS(chain(), trellis::usage_error);
}

TEST_CASE("a chain of exactly one step is that step", "[unit][canvas]") {
  CHECK(to_json(chain(t("a"))) == expect_json("@a"));
  CHECK(chain(t("a")).is_task());
  // Celery: test_chain_of_chain_with_a_single_task.
  CHECK(to_json(chain(chain(t("a")))) == expect_json("@a"));
  CHECK(to_json(chain(group(t("a"), t("b")))) == expect_json(R"({"group":[@a,@b]})"));
  auto c = chord(group(t("a"), t("b")), t("c"));
  CHECK(to_json(chain(c)) == to_json(c));
}

TEST_CASE("a one-member group inside a chain unrolls to its member", "[unit][canvas]") {
  CHECK(to_json(chain(t("a"), group(t("b")))) == expect_json(R"({"chain":[@a,@b]})"));
  CHECK(to_json(chain(group(t("a")), t("b"))) == expect_json(R"({"chain":[@a,@b]})"));
  // Celery docs, "Group Unrolling": chain(add.s(2, 2), group(add.s(1)), add.s(1)).
  CHECK(to_json(chain(t("a"), group(t("b")), t("c"))) == expect_json(R"({"chain":[@a,@b,@c]})"));
  CHECK(to_json(chain(group(t("a")))) == expect_json("@a"));

  SECTION("a member that is a chain is spliced in") {
    CHECK(to_json(chain(t("a"), group(chain(t("b"), t("c"))), t("d"))) == expect_json(R"({"chain":[@a,@b,@c,@d]})"));
  }
  SECTION("a member that is a group keeps the usual rules") {
    CHECK(to_json(chain(t("a"), group(group(t("b"), t("c"))), t("d"))) ==
          expect_json(R"({"chain":[@a,{"chord":{"header":[@b,@c],"body":@d}}]})"));
  }
}

TEST_CASE("a group followed by a step in a chain becomes a chord", "[unit][canvas]") {
  CHECK(to_json(chain(group(t("a"), t("b")), t("c"))) == expect_json(R"({"chord":{"header":[@a,@b],"body":@c}})"));
  CHECK(chain(group(t("a"), t("b")), t("c")).type() == canvas::kind::chord);

  SECTION("only the next step becomes the body; later steps follow the chord") {
    CHECK(to_json(chain(t("a"), group(t("b"), t("c")), t("d"), t("e"))) ==
          expect_json(R"({"chain":[@a,{"chord":{"header":[@b,@c],"body":@d}},@e]})"));
  }
  SECTION("the upgrade repeats left to right") {
    CHECK(to_json(chain(group(t("a"), t("b")), t("c"), group(t("d"), t("e")), t("f"))) ==
          expect_json(R"({"chain":[{"chord":{"header":[@a,@b],"body":@c}},{"chord":{"header":[@d,@e],"body":@f}}]})"));
  }
  SECTION("a group followed by a group makes the second group the body, then the rule goes on") {
    CHECK(to_json(chain(group(t("a"), t("b")), group(t("c"), t("d")), t("e"))) ==
          expect_json(R"({"chain":[{"chord":{"header":[@a,@b],"body":{"group":[@c,@d]}}},@e]})"));
  }
  SECTION("a group followed by a chord makes the chord the body") {
    auto inner = chord(group(t("c"), t("d")), t("e"));
    CHECK(to_json(chain(group(t("a"), t("b")), inner)) ==
          expect_json(R"({"chord":{"header":[@a,@b],"body":{"chord":{"header":[@c,@d],"body":@e}}}})"));
  }
  SECTION("an empty group followed by a step is a chord with an empty header") {
    CHECK(to_json(chain(t("a"), group(), t("b"))) ==
          expect_json(R"({"chain":[@a,{"chord":{"header":[],"body":@b}}]})"));
    CHECK(to_json(chain(group(), t("b"))) == expect_json(R"({"chord":{"header":[],"body":@b}})"));
  }
  SECTION("the upgrade sees through chain flattening") {
    CHECK(to_json(chain(chain(t("a"), group(t("b"), t("c"))), t("d"))) ==
          expect_json(R"({"chain":[@a,{"chord":{"header":[@b,@c],"body":@d}}]})"));
    CHECK(to_json(chain(group(t("a"), t("b")), chain(t("c"), t("d")))) ==
          expect_json(R"({"chain":[{"chord":{"header":[@a,@b],"body":@c}},@d]})"));
  }
}

TEST_CASE("a group that ends a chain stays a group", "[unit][canvas]") {
  CHECK(to_json(chain(t("a"), group(t("b"), t("c")))) == expect_json(R"({"chain":[@a,{"group":[@b,@c]}]})"));
  // The header comment's example: the inner group stays nested in the outer one.
  CHECK(to_json(group(chain(t("a"), group(t("b"), t("c"))), t("d"))) ==
        expect_json(R"({"group":[{"chain":[@a,{"group":[@b,@c]}]},@d]})"));
}

TEST_CASE("an empty group that ends a chain of several steps is dropped", "[unit][canvas]") {
  // Celery: test_empty_groups_are_skipped_in_chain and
  // test_empty_group_body_is_skipped_when_chain_upgrades_to_chord.
  CHECK(to_json(chain(t("a"), group())) == expect_json("@a"));
  CHECK(to_json(chain(group(t("a"), t("b")), group(), group())) == expect_json(R"({"group":[@a,@b]})"));
  CHECK(to_json(chain(t("a"), group(t("b"), t("c")), group())) == expect_json(R"({"chain":[@a,{"group":[@b,@c]}]})"));
  SECTION("alone it is the chain") { CHECK(to_json(chain(group())) == expect_json(R"({"group":[]})")); }
}

TEST_CASE("a group whose only member is a chain ending in a group is that chain", "[unit][canvas]") {
  // Celery's special case in group.apply_async (test_group_results_in_chain):
  // the result is the inner group's list, not a list around it.
  auto g = group(chain(t("a"), group(t("b"), t("c"))));
  CHECK(g.type() == canvas::kind::chain);
  CHECK(to_json(g) == expect_json(R"({"chain":[@a,{"group":[@b,@c]}]})"));
  SECTION("other one-member groups stay groups") {
    CHECK(to_json(group(chain(t("a"), t("b")))) == expect_json(R"({"group":[{"chain":[@a,@b]}]})"));
    CHECK(to_json(group(chord(group(t("a"), t("b")), t("c")))) ==
          expect_json(R"({"group":[{"chord":{"header":[@a,@b],"body":@c}}]})"));
  }
}

TEST_CASE("a chord header given as a canvas uses a group's members, or the canvas as its one member",
          "[unit][canvas]") {
  CHECK(to_json(chord(group(t("a"), t("b")), t("c"))) == expect_json(R"({"chord":{"header":[@a,@b],"body":@c}})"));
  CHECK(to_json(chord(canvas(t("a")), t("c"))) == expect_json(R"({"chord":{"header":[@a],"body":@c}})"));
  CHECK(to_json(chord(chain(t("a"), t("b")), t("c"))) ==
        expect_json(R"({"chord":{"header":[{"chain":[@a,@b]}],"body":@c}})"));
  CHECK(to_json(chord(group(), t("c"))) == expect_json(R"({"chord":{"header":[],"body":@c}})"));
  CHECK(to_json(chord(std::vector<canvas>{}, t("c"))) == expect_json(R"({"chord":{"header":[],"body":@c}})"));
}

TEST_CASE("groups inside a chord header flatten into the header", "[unit][canvas]") {
  // Celery: test_nested_chord_group and test_nested_group_chord_counting_mixed.
  CHECK(to_json(chord(std::vector<canvas>{group(t("a"), t("b")), t("c")}, t("d"))) ==
        expect_json(R"({"chord":{"header":[@a,@b,@c],"body":@d}})"));
  // Celery: test_nested_chord_group_chain_group_tail - the chain keeps its group nested.
  CHECK(to_json(chord(group(chain(t("a"), group(t("b"), t("c")))), t("d"))) ==
        expect_json(R"({"chord":{"header":[{"chain":[@a,{"group":[@b,@c]}]}],"body":@d}})"));
}

TEST_CASE("canvases nest freely and keep their shape", "[unit][canvas]") {
  SECTION("a chord inside a chain inside a group") {
    auto c = group(chain(t("a"), chord(group(t("b"), t("c")), t("d")), t("e")), t("f"));
    CHECK(to_json(c) == expect_json(R"({"group":[{"chain":[@a,{"chord":{"header":[@b,@c],"body":@d}},@e]},@f]})"));
    CHECK(c.task_count() == 6);
  }
  SECTION("a chord whose body is a chord") {
    auto c = chord(group(t("a"), t("b")), chord(group(t("c"), t("d")), t("e")));
    CHECK(to_json(c) == expect_json(R"({"chord":{"header":[@a,@b],"body":{"chord":{"header":[@c,@d],"body":@e}}}})"));
    CHECK(c.body().type() == canvas::kind::chord);
  }
  SECTION("a chord whose body is a chain or a group") {
    CHECK(to_json(chord(group(t("a"), t("b")), chain(t("c"), t("d")))) ==
          expect_json(R"({"chord":{"header":[@a,@b],"body":{"chain":[@c,@d]}}})"));
    CHECK(to_json(chord(group(t("a"), t("b")), group(t("c"), t("d")))) ==
          expect_json(R"({"chord":{"header":[@a,@b],"body":{"group":[@c,@d]}}})"));
  }
  SECTION("a chord header holding chains and chords") {
    auto c = chord(std::vector<canvas>{chain(t("a"), t("b")), chord(group(t("c"), t("d")), t("e")), t("f")}, t("g"));
    CHECK(to_json(c) == expect_json(R"({"chord":{"header":[{"chain":[@a,@b]},
                                     {"chord":{"header":[@c,@d],"body":@e}},@f],"body":@g}})"));
    CHECK(c.children().size() == 3);
    CHECK(c.task_count() == 7);
  }
  SECTION("Celery's test_chain_chord_chain_chord") {
    auto c =
        chain(t("i1"),
              chord(std::vector<canvas>{t("i2"), chain(t("i3"), chord(std::vector<canvas>{t("i4"), t("i5")}, t("i6")))},
                    t("i7")));
    CHECK(to_json(c) == expect_json(R"({"chain":[@i1,{"chord":{"header":[@i2,{"chain":[@i3,
                                     {"chord":{"header":[@i4,@i5],"body":@i6}}]}],"body":@i7}}]})"));
  }
}

TEST_CASE("task_count counts every leaf, chord bodies included", "[unit][canvas]") {
  CHECK(canvas(t("a")).task_count() == 1);
  CHECK(group().task_count() == 0);
  CHECK(chain(t("a"), t("b"), t("c")).task_count() == 3);
  CHECK(group(t("a"), group(t("b"), t("c"))).task_count() == 3);
  CHECK(chord(group(), t("c")).task_count() == 1);
  CHECK(chord(group(t("a"), t("b")), chain(t("c"), group(t("d"), t("e")))).task_count() == 5);
}

TEST_CASE("a canvas is a value: copies are independent of later changes to the source signature", "[unit][canvas]") {
  auto sig = signature("a", {value(1)});
  canvas c = sig;
  sig = sig.priority(3);
  CHECK_FALSE(c.sig().options().priority.has_value());
  canvas copy = c;
  CHECK(to_json(copy) == to_json(c));
}

// -- parsing -----------------------------------------------------------------

TEST_CASE("the workflow-file shape parses into the canvas it describes", "[unit][canvas]") {
  auto text = R"({"chain":[
      {"task":"a","args":[1,"x",null,true,2.5,[1],{"k":"v"}],"kwargs":{"n":1}},
      {"group":[{"task":"b"},{"task":"c","options":{"immutable":true}}]},
      {"chord":{"header":[{"task":"d"}],"body":{"task":"e","options":{
          "retry":{"max_retries":3,"countdown_ms":10,"backoff":"fixed","backoff_max_ms":100,"jitter":false},
          "idempotency_key":"key","queue":"q","countdown_ms":1,"expires_ms":2,"time_limit_ms":3,"priority":9}}}}]})";
  auto c = trellis::canvas_from_value(parse_json(text));
  REQUIRE(c.has_value());
  auto policy = trellis::retry_policy::fixed(3, 10ms);
  policy.backoff_max = 100ms;
  auto expected = chain(signature("a",
                                  {value(1), value("x"), value(nullptr), value(true), value(2.5),
                                   value(value::array{value(1)}), value(value::map{{"k", value("v")}})},
                                  {{"n", value(1)}}),
                        group(t("b"), t("c").immutable()),
                        chord(canvas(t("d")), signature("e")
                                                  .retry(policy)
                                                  .idempotency_key("key")
                                                  .queue("q")
                                                  .countdown(1ms)
                                                  .expires(2ms)
                                                  .time_limit(3ms)
                                                  .priority(9)));
  CHECK(to_json(*c) == to_json(expected));
  // The group followed by the chord became chord(group, chord).
  CHECK(c->children()[1].type() == canvas::kind::chord);
  CHECK(c->children()[1].body().type() == canvas::kind::chord);
  REQUIRE(c->children()[1].body().body().sig().options().retry.has_value());
  CHECK(*c->children()[1].body().body().sig().options().retry == policy);
}

TEST_CASE("args, kwargs and options may be left out of a task object", "[unit][canvas]") {
  auto c = trellis::canvas_from_value(parse_json(R"({"task":"a"})"));
  REQUIRE(c.has_value());
  REQUIRE(c->is_task());
  CHECK(c->sig().args().empty());
  CHECK(c->sig().kwargs().empty());
  CHECK_FALSE(c->sig().options().immutable);
  CHECK(to_json(*c) == expect_json("@a"));
}

TEST_CASE("retry fields left out of a workflow file take retry_policy's defaults", "[unit][canvas]") {
  auto c = trellis::canvas_from_value(parse_json(R"({"task":"a","options":{"retry":{"max_retries":2}}})"));
  REQUIRE(c.has_value());
  auto expected = trellis::retry_policy{};
  expected.max_retries = 2;
  REQUIRE(c->sig().options().retry.has_value());
  CHECK(*c->sig().options().retry == expected);

  auto empty = trellis::canvas_from_value(parse_json(R"({"task":"a","options":{"retry":{}}})"));
  REQUIRE(empty.has_value());
  CHECK(*empty->sig().options().retry == trellis::retry_policy{});
}

TEST_CASE("a parsed canvas is normalized by the same rules as a built one", "[unit][canvas]") {
  auto c = trellis::canvas_from_value(parse_json(
      R"({"chain":[{"task":"a"},{"group":[{"task":"b"},{"group":[{"task":"c"}]}]},{"task":"d"},
                   {"chain":[{"task":"e"},{"group":[{"task":"f"}]}]}]})"));
  REQUIRE(c.has_value());
  CHECK(to_json(*c) == expect_json(R"({"chain":[@a,{"chord":{"header":[@b,@c],"body":@d}},@e,@f]})"));

  auto one = trellis::canvas_from_value(parse_json(R"({"chain":[{"group":[{"task":"a"},{"task":"b"}]}]})"));
  REQUIRE(one.has_value());
  CHECK(to_json(*one) == expect_json(R"({"group":[@a,@b]})"));
}

TEST_CASE("a workflow file that breaks the shape is rejected with its JSONPath and the problem", "[unit][canvas]") {
  struct bad_case {
    const char* text;
    const char* message;
  };
  const std::vector<bad_case> cases{
      // What a canvas object is.
      {R"([])", "$: expected an object with one of task, chain, group, chord, map, starmap, chunks, got array"},
      {R"("add")", R"($: expected an object with one of task, chain, group, chord, map, starmap, chunks, got "add")"},
      {R"({})", "$: expected an object with one of task, chain, group, chord, map, starmap, chunks"},
      {R"({"group":[{"tsk":"add"}]})", "$.group[0]: unknown key 'tsk'"},
      {R"({"task":"a","chain":[]})",
       "$: expected exactly one of task, chain, group, chord, map, starmap, chunks, got both 'task' and 'chain'"},
      {R"({"group":[],"chord":{}})",
       "$: expected exactly one of task, chain, group, chord, map, starmap, chunks, got both 'group' and 'chord'"},
      {R"({"chain":[{"task":"a"}],"extra":1})", "$: unknown key 'extra'"},
      // Task objects.
      {R"({"task":""})", R"($.task: must be a non-empty string, got "")"},
      {R"({"task":7})", "$.task: must be a non-empty string, got 7"},
      {R"({"task":"a","arg":[]})", "$: unknown key 'arg'"},
      {R"({"chain":[{"task":"a","args":{}}]})", "$.chain[0].args: must be an array, got map"},
      {R"({"task":"a","kwargs":[]})", "$.kwargs: must be a map, got array"},
      {R"({"task":"a","options":[]})", "$.options: must be a map, got array"},
      {R"({"task":"a","options":{"retries":1}})", "$.options: unknown key 'retries'"},
      // Options.
      {R"({"task":"a","options":{"immutable":1}})", "$.options.immutable: must be a bool, got 1"},
      {R"({"task":"a","options":{"idempotency_key":""}})",
       R"($.options.idempotency_key: must be a non-empty string, got "")"},
      {R"({"task":"a","options":{"queue":null}})", "$.options.queue: must be a non-empty string, got null"},
      {R"({"task":"a","options":{"countdown_ms":-1}})",
       "$.options.countdown_ms: must be an integer from 0 to 315360000000 (ten years), got -1"},
      {R"({"task":"a","options":{"countdown_ms":1.5}})",
       "$.options.countdown_ms: must be an integer from 0 to 315360000000 (ten years), got 1.5"},
      {R"({"task":"a","options":{"expires_ms":"10"}})",
       R"($.options.expires_ms: must be an integer from 0 to 315360000000 (ten years), got "10")"},
      {R"({"task":"a","options":{"time_limit_ms":0}})",
       "$.options.time_limit_ms: must be an integer from 1 to 315360000000 (ten years), got 0"},
      // Durations that would overflow a clock in epoch ms: a countdown that ran at once, a limit
      // that failed at once, an expiry that expired at once.
      {R"({"task":"a","options":{"countdown_ms":4611686018427387904}})",
       "$.options.countdown_ms: must be an integer from 0 to 315360000000 (ten years), got 4611686018427387904"},
      {R"({"task":"a","options":{"time_limit_ms":9223372036854775807}})",
       "$.options.time_limit_ms: must be an integer from 1 to 315360000000 (ten years), got 9223372036854775807"},
      {R"({"task":"a","options":{"expires_ms":315360000001}})",
       "$.options.expires_ms: must be an integer from 0 to 315360000000 (ten years), got 315360000001"},
      {R"({"task":"a","options":{"priority":10}})", "$.options.priority: must be an integer from 0 to 9, got 10"},
      {R"({"task":"a","options":{"priority":-1}})", "$.options.priority: must be an integer from 0 to 9, got -1"},
      // Retry policies.
      {R"({"task":"a","options":{"retry":3}})", "$.options.retry: must be a map, got 3"},
      {R"({"task":"a","options":{"retry":{"max":3}}})", "$.options.retry: unknown key 'max'"},
      {R"({"task":"a","options":{"retry":{"max_retries":-1}}})",
       "$.options.retry.max_retries: must be an integer from 0 to 2147483647, got -1"},
      {R"({"task":"a","options":{"retry":{"max_retries":2147483648}}})",
       "$.options.retry.max_retries: must be an integer from 0 to 2147483647, got 2147483648"},
      {R"({"task":"a","options":{"retry":{"countdown_ms":-5}}})",
       "$.options.retry.countdown_ms: must be an integer from 0 to 315360000000 (ten years), got -5"},
      {R"({"task":"a","options":{"retry":{"backoff_max_ms":true}}})",
       "$.options.retry.backoff_max_ms: must be an integer from 0 to 315360000000 (ten years), got true"},
      {R"({"chain":[{"task":"a"},{"task":"b","options":{"retry":{"backoff":"linear"}}}]})",
       R"($.chain[1].options.retry.backoff: must be "fixed" or "exponential", got "linear")"},
      {R"({"task":"a","options":{"retry":{"backoff":1}}})",
       R"($.options.retry.backoff: must be "fixed" or "exponential", got 1)"},
      {R"({"task":"a","options":{"retry":{"jitter":"yes"}}})", R"($.options.retry.jitter: must be a bool, got "yes")"},
      // Chains, groups and chords.
      {R"({"chain":[]})", "$.chain: must be a non-empty array"},
      {R"({"chain":{"task":"a"}})", "$.chain: must be an array, got map"},
      {R"({"group":null})", "$.group: must be an array, got null"},
      {R"({"group":[{"task":"a"},5]})",
       "$.group[1]: expected an object with one of task, chain, group, chord, map, starmap, chunks, got 5"},
      {R"({"chord":[]})", "$.chord: must be a map, got array"},
      {R"({"chord":{"body":{"task":"b"}}})", "$.chord: missing key 'header'"},
      {R"({"chord":{"header":[]}})", "$.chord: missing key 'body'"},
      {R"({"chord":{"header":[],"body":{"task":"b"},"options":{}}})", "$.chord: unknown key 'options'"},
      {R"({"chord":{"header":{"task":"a"},"body":{"task":"b"}}})", "$.chord.header: must be an array, got map"},
      {R"({"chord":{"header":[],"body":[]}})",
       "$.chord.body: expected an object with one of task, chain, group, chord, map, starmap, chunks, got array"},
      {R"({"chord":{"header":[{"task":"a","options":{"retry":{"backoff":"x"}}}],"body":{"task":"b"}}})",
       R"($.chord.header[0].options.retry.backoff: must be "fixed" or "exponential", got "x")"},
      {R"({"group":[{"chain":[{"task":"a"},{"chord":{"header":[],"body":{"task":""}}}]}]})",
       R"($.group[0].chain[1].chord.body.task: must be a non-empty string, got "")"},
  };
  for (const auto& bad : cases) {
    INFO("input: " << bad.text);
    CHECK(rejection(bad.text) == bad.message);
  }
}

TEST_CASE("a long offending string is shortened in the message", "[unit][canvas]") {
  std::string name(200, 'x');
  auto message = rejection(R"({"task":"a","options":{"retry":{"backoff":")" + name + R"("}}})");
  CHECK(message.size() < 150);
  CHECK(message.find("...") != std::string::npos);
}

TEST_CASE("canvas nesting deeper than max_depth is rejected naming the limit", "[unit][canvas]") {
  trellis::canvas_limits limits;
  limits.max_depth = 3;
  // Depth counts canvas objects from the root: chain (1), group (2), task (3).
  auto ok = trellis::canvas_from_value(parse_json(R"({"chain":[{"group":[{"task":"a"},{"task":"b"}]},{"task":"c"}]})"),
                                       limits);
  CHECK(ok.has_value());
  CHECK(rejection(R"({"chain":[{"group":[{"chain":[{"task":"a"}]}]}]})", limits) ==
        "$.chain[0].group[0].chain[0]: canvas nesting exceeds max_depth (3)");
  CHECK(rejection(R"({"chord":{"header":[],"body":{"chord":{"header":[],"body":{"group":[{"task":"a"}]}}}}})",
                  limits) == "$.chord.body.chord.body.group[0]: canvas nesting exceeds max_depth (3)");

  SECTION("hostile nesting far beyond the default limit fails cleanly") {
    // Built as a value, not JSON, so the JSON reader's own depth cap is not what stops it.
    value v = value::map{{"task", value("leaf")}};
    for (int i = 0; i < 1000; ++i) {
      value::array steps;
      steps.push_back(std::move(v));
      value::map wrapper;
      wrapper.emplace("chain", std::move(steps));
      v = std::move(wrapper);
    }
    auto c = trellis::canvas_from_value(v);
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().code() == trellis::errc::invalid_workflow);
    CHECK(c.error().message().find("max_depth (64)") != std::string::npos);
  }
}

TEST_CASE("a workflow with more tasks than max_tasks is rejected naming the limit", "[unit][canvas]") {
  trellis::canvas_limits limits;
  limits.max_tasks = 3;
  auto ok = trellis::canvas_from_value(parse_json(R"({"group":[{"task":"a"},{"task":"b"},{"task":"c"}]})"), limits);
  CHECK(ok.has_value());
  CHECK(rejection(R"({"group":[{"task":"a"},{"task":"b"},{"task":"c"},{"task":"d"}]})", limits) ==
        "$.group[3]: the workflow has more than max_tasks (3) tasks");
  // Chord bodies count too.
  CHECK(rejection(R"({"chord":{"header":[{"task":"a"},{"task":"b"},{"task":"c"}],"body":{"task":"d"}}})", limits) ==
        "$.chord.body: the workflow has more than max_tasks (3) tasks");
}

TEST_CASE("a normalized canvas survives to_value and canvas_from_value unchanged", "[unit][canvas]") {
  auto rich = signature("r",
                        {value(nullptr), value(false), value(-7), value(0.25), value("s"),
                         value(trellis::binary{{0x00, 0xff}}), value(value::array{value(1), value("two")}),
                         value(value::map{{"deep", value(value::map{{"x", value(1)}})}})},
                        {{"kw", value(value::array{})}})
                  .immutable()
                  .retry(trellis::retry_policy::exponential(5, 10ms, 1000ms))
                  .idempotency_key("idem")
                  .queue("q")
                  .countdown(0ms)
                  .expires(1ms)
                  .time_limit(1ms)
                  .priority(5);
  const std::vector<canvas> samples{
      canvas(t("a")),
      canvas(rich),
      group(),
      group(t("a")),
      chain(t("a"), group(t("b"), t("c"))),
      chain(t("a"), group(t("b"), t("c")), t("d"), t("e")),
      group(chain(t("a"), group(t("b"), t("c"))), t("d")),
      chord(group(), t("b")),
      chord(std::vector<canvas>{chain(t("a"), t("b")), chord(group(t("c"), t("d")), rich), group(t("e"))},
            chord(group(t("f"), t("g")), group(t("h"), t("i")))),
      group(chain(rich, chord(group(t("b"), t("c")), chain(t("d"), t("e"))), t("f")), t("g")),
  };
  for (const auto& c : samples) {
    auto v = to_value(c);
    INFO("canvas: " << to_json(v));
    auto back = trellis::canvas_from_value(v);
    REQUIRE(back.has_value());
    CHECK(to_value(*back) == v);
    CHECK(back->task_count() == c.task_count());
  }
}

TEST_CASE("task and queue names take at most 256 bytes and an idempotency key 1024, and a long unknown key is cut",
          "[unit][canvas]") {
  auto task = [](std::size_t n) { return R"({"task":")" + std::string(n, 't') + R"("})"; };
  CHECK(trellis::canvas_from_value(parse_json(task(trellis::max_name_bytes))));
  CHECK_THAT(rejection(task(trellis::max_name_bytes + 1)),
             Catch::StartsWith("$.task: must be at most 256 bytes, got 257: \"ttt"));
  auto queue = [](std::size_t n) { return R"({"task":"a","options":{"queue":")" + std::string(n, 'q') + R"("}})"; };
  CHECK(trellis::canvas_from_value(parse_json(queue(256))));
  CHECK_THAT(rejection(queue(257)), Catch::StartsWith("$.options.queue: must be at most 256 bytes, got 257"));
  auto key = [](std::size_t n) {
    return R"({"task":"a","options":{"idempotency_key":")" + std::string(n, 'k') + R"("}})";
  };
  CHECK(trellis::canvas_from_value(parse_json(key(trellis::max_idempotency_key_bytes))));
  CHECK_THAT(rejection(key(1025)), Catch::StartsWith("$.options.idempotency_key: must be at most 1024 bytes"));
  auto unknown = rejection(R"({"task":"a",")" + std::string(100'000, 'u') + R"(":1})");
  CHECK(unknown.size() < 120);
  CHECK_THAT(unknown, Catch::StartsWith("$: unknown key 'uuuu") && Catch::EndsWith("...'"));
}

TEST_CASE("The C++ builder refuses what the file parser refuses: durations past ten years, over-long names",
          "[unit][canvas]") {
  using std::chrono::milliseconds;
  const trellis::signature s{"add"};
  const milliseconds too_long{trellis::max_duration_ms + 1};
  CHECK_NOTHROW(s.countdown(milliseconds{trellis::max_duration_ms}));
  CHECK_THROWS_AS(s.countdown(too_long), trellis::usage_error);
  CHECK_THROWS_AS(s.countdown(milliseconds{4611686018427387904}), trellis::usage_error);
  CHECK_THROWS_AS(s.expires(milliseconds{INT64_MAX}), trellis::usage_error);
  CHECK_THROWS_AS(s.time_limit(milliseconds{INT64_MAX}), trellis::usage_error);
  CHECK_THROWS_AS(s.time_limit(milliseconds{0}), trellis::usage_error);
  trellis::retry_policy policy;
  policy.countdown = too_long;
  CHECK_THROWS_AS(s.retry(policy), trellis::usage_error);
  CHECK_THROWS_AS(s.queue(std::string(trellis::max_name_bytes + 1, 'q')), trellis::usage_error);
  CHECK_THROWS_AS(s.idempotency_key(std::string(trellis::max_idempotency_key_bytes + 1, 'k')), trellis::usage_error);
  CHECK_THROWS_AS(trellis::canvas{trellis::signature{std::string(trellis::max_name_bytes + 1, 't')}},
                  trellis::usage_error);
  CHECK_THROWS_WITH(s.expires(milliseconds{INT64_MAX}),
                    Catch::Contains("expires must be from 0 to 315360000000 ms (ten years)"));
}

TEST_CASE("A step whose own arguments encode past max_argument_bytes is refused at parse time, naming it and the limit",
          "[unit][canvas]") {
  trellis::canvas_limits limits;
  limits.max_argument_bytes = 1000;
  auto flow = trellis::value::map{
      {"chain", trellis::value::array{
                    trellis::value::map{{"task", "small"}, {"args", trellis::value::array{std::string(900, 'a')}}},
                    trellis::value::map{{"task", "big"},
                                        {"args", trellis::value::array{std::string(600, 'a')}},
                                        {"kwargs", trellis::value::map{{"more", std::string(600, 'b')}}}}}}};
  auto c = trellis::canvas_from_value(flow, limits);
  REQUIRE_FALSE(c);
  CHECK(c.error().code() == trellis::errc::payload_too_large);
  CHECK_THAT(c.error().message(), Catch::StartsWith("$.chain[1]: the arguments of 'big' are "));
  CHECK_THAT(c.error().message(), Catch::Contains("beyond max_argument_bytes (1000)"));
  limits.max_argument_bytes = 2000;
  CHECK(trellis::canvas_from_value(flow, limits));
}

TEST_CASE("Size limits must be from 1 byte to what the store can keep", "[unit][canvas]") {
  trellis::canvas_limits limits;
  CHECK(trellis::check_size_limits(limits));
  limits.max_submission_bytes = trellis::defaults::max_configurable_bytes;
  CHECK(trellis::check_size_limits(limits));
  limits.max_argument_bytes = 0;
  auto bad = trellis::check_size_limits(limits);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == trellis::errc::invalid_config);
  CHECK_THAT(bad.error().message(), Catch::StartsWith("max_argument_bytes must be from 1 to "));
  limits.max_argument_bytes = 1;
  limits.max_result_bytes = trellis::defaults::max_configurable_bytes + 1;
  CHECK_FALSE(trellis::check_size_limits(limits));
}

TEST_CASE("soft_time_limit_ms reads, writes back and is refused outside 1 ms to ten years", "[unit][canvas]") {
  auto c = trellis::canvas_from_value(
      parse_json(R"({"task":"a","options":{"soft_time_limit_ms":250,"time_limit_ms":500}})"));
  REQUIRE(c);
  CHECK(c->sig().options().soft_time_limit == std::optional<std::chrono::milliseconds>{250ms});
  CHECK(c->sig().options().time_limit == std::optional<std::chrono::milliseconds>{500ms});
  auto written = to_value(*c);
  CHECK(written.as_map().at("options").as_map().at("soft_time_limit_ms") == value(std::int64_t{250}));
  auto back = trellis::canvas_from_value(written);
  REQUIRE(back);
  CHECK(back->sig().options().soft_time_limit == std::optional<std::chrono::milliseconds>{250ms});
  auto zero = trellis::canvas_from_value(parse_json(R"({"task":"a","options":{"soft_time_limit_ms":0}})"));
  REQUIRE_FALSE(zero);
  CHECK(zero.error().message() ==
        "$.options.soft_time_limit_ms: must be an integer from 1 to 315360000000 (ten years), got 0");
  signature s{"a"};
  CHECK(s.soft_time_limit(1ms).options().soft_time_limit == std::optional<std::chrono::milliseconds>{1ms});
  CHECK_THROWS_AS(s.soft_time_limit(0ms), trellis::usage_error);
}
