// The control contract: requests and replies round-trip, and every kind of
// bad input is a specific error, never a throw.

#include "trellis/control_messages.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace trellis;
using namespace trellis::detail;

namespace {

std::string pack(value::map m) { return pack_to_string(value(std::move(m))); }

}  // namespace

TEST_CASE("every control request round-trips with its fields", "[unit][control]") {
  for (auto op : {control_op::status, control_op::revoke, control_op::dlq_list, control_op::dlq_replay,
                  control_op::inspect, control_op::metrics, control_op::revoked}) {
    control_request r;
    r.op = op;
    if (op == control_op::status || op == control_op::revoke || op == control_op::revoked) {
      r.workflow_id = "wf-1";
    }
    if (op == control_op::dlq_replay) {
      r.letter = 42;
    }
    auto back = decode_control_request(encode(r));
    INFO(to_string(op));
    REQUIRE(back);
    CHECK(back->op == op);
    CHECK(back->workflow_id == r.workflow_id);
    CHECK(back->letter == r.letter);
  }
}

TEST_CASE("a revoke names one node, its notice the task nodes, and both terminate only when told",
          "[unit][control]") {
  for (auto op : {control_op::revoke, control_op::revoked}) {
    control_request r;
    r.op = op;
    r.workflow_id = "wf-1";
    auto whole = decode_control_request(encode(r));
    REQUIRE(whole);
    CHECK_FALSE(whole->node);
    CHECK(whole->nodes.empty());
    CHECK_FALSE(whole->terminate);
    if (op == control_op::revoke) {
      r.node = 7;
    } else {
      r.nodes = {3, 4, 2147483647};
    }
    r.terminate = true;
    auto some = decode_control_request(encode(r));
    REQUIRE(some);
    CHECK(some->node == r.node);
    CHECK(some->nodes == r.nodes);
    CHECK(some->terminate);
  }
  std::vector<std::int32_t> too_many(max_revoked_nodes + 1, 1);
  auto over = pack({{"v", 1}, {"op", "revoked"}, {"id", "wf"},
                    {"nodes", value::array(too_many.begin(), too_many.end())}});
  CHECK_FALSE(decode_control_request(over));
}

TEST_CASE("control ops travel under their subject verbs", "[unit][control]") {
  CHECK(std::string{subject_verb(control_op::status)} == "status");
  CHECK(std::string{subject_verb(control_op::revoke)} == "revoke");
  CHECK(std::string{subject_verb(control_op::dlq_list)} == "dlq");
  CHECK(std::string{subject_verb(control_op::dlq_replay)} == "dlq");
  CHECK(std::string{subject_verb(control_op::inspect)} == "inspect");
  CHECK(std::string{subject_verb(control_op::metrics)} == "metrics");
  CHECK(std::string{subject_verb(control_op::revoked)} == "revoked");
}

TEST_CASE("a control request of an unknown version is unsupported_version", "[unit][control]") {
  auto r = decode_control_request(pack({{"v", 2}, {"op", "inspect"}}));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::unsupported_version);
  CHECK(r.error().message().find("version 2") != std::string::npos);
}

TEST_CASE("malformed control requests are malformed_envelope with the reason", "[unit][control]") {
  struct bad_case {
    const char* name;
    std::string bytes;
    const char* says;
  };
  bad_case cases[] = {
      {"not msgpack", std::string{"\xc1garbage", 8}, ""},
      {"empty", std::string{}, ""},
      {"not a map", pack_to_string(value(value::array{1, 2})), "not a map"},
      {"no version", pack({{"op", "inspect"}}), "'v'"},
      {"version not an int", pack({{"v", "1"}, {"op", "inspect"}}), "'v'"},
      {"no op", pack({{"v", 1}}), "'op'"},
      {"unknown op", pack({{"v", 1}, {"op", "shutdown"}}), "unknown op 'shutdown'"},
      {"status without id", pack({{"v", 1}, {"op", "status"}}), "'id'"},
      {"status with an empty id", pack({{"v", 1}, {"op", "status"}, {"id", ""}}), "'id'"},
      {"revoke with an int id", pack({{"v", 1}, {"op", "revoke"}, {"id", 7}}), "'id'"},
      {"replay without letter", pack({{"v", 1}, {"op", "dlq_replay"}}), "'letter'"},
      {"replay with a string letter", pack({{"v", 1}, {"op", "dlq_replay"}, {"letter", "1"}}), "'letter'"},
      {"an extra field", pack({{"v", 1}, {"op", "inspect"}, {"id", "wf"}}), "field 'id' is not part of op"},
      {"revoke of a negative node", pack({{"v", 1}, {"op", "revoke"}, {"id", "wf"}, {"node", -1}}), "'node'"},
      {"revoke of a node past INT32_MAX", pack({{"v", 1}, {"op", "revoke"}, {"id", "wf"}, {"node", 2147483648LL}}),
       "'node'"},
      {"revoke of a string node", pack({{"v", 1}, {"op", "revoke"}, {"id", "wf"}, {"node", "3"}}), "'node'"},
      {"terminate not a boolean", pack({{"v", 1}, {"op", "revoked"}, {"id", "wf"}, {"terminate", 1}}),
       "'terminate'"},
      {"a notice of an empty node list", pack({{"v", 1}, {"op", "revoked"}, {"id", "wf"}, {"nodes", value::array{}}}),
       "'nodes'"},
      {"a notice of a negative node", pack({{"v", 1}, {"op", "revoked"}, {"id", "wf"}, {"nodes", value::array{1, -2}}}),
       "'nodes'"},
      {"a notice with one node, not a list", pack({{"v", 1}, {"op", "revoked"}, {"id", "wf"}, {"node", 1}}),
       "field 'node' is not part of op"},
      {"a node on a status request", pack({{"v", 1}, {"op", "status"}, {"id", "wf"}, {"node", 1}}),
       "field 'node' is not part of op"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto r = decode_control_request(c.bytes);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
    CHECK(r.error().message().find(c.says) != std::string::npos);
  }
}

TEST_CASE("a control message over the size limit is payload_too_large", "[unit][control]") {
  std::string huge(max_control_bytes + 1, 'x');
  auto r = decode_control_request(huge);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::payload_too_large);
  auto reply = decode_control_reply(huge);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code() == errc::payload_too_large);
}

TEST_CASE("a control reply carries a body or an error with its code", "[unit][control]") {
  value body = value::map{{"id", "wf"}, {"nodes", value::array{1, 2}}};
  auto ok = decode_control_reply(encode_control_reply(body));
  REQUIRE(ok);
  CHECK(*ok == body);

  auto failed = decode_control_reply(encode_control_error(error{errc::not_found, "no workflow with id wf"}));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code() == errc::not_found);
  CHECK(failed.error().message() == "no workflow with id wf");
}

TEST_CASE("unreadable control replies are malformed_envelope", "[unit][control]") {
  struct bad_case {
    const char* name;
    std::string bytes;
  };
  bad_case cases[] = {
      {"neither ok nor error", pack({{"v", 1}})},
      {"both ok and error", pack({{"v", 1}, {"ok", 1}, {"error", value::map{}}})},
      {"another key", pack({{"v", 1}, {"result", 1}})},
      {"error not a map", pack({{"v", 1}, {"error", "boom"}})},
      {"error without message", pack({{"v", 1}, {"error", value::map{{"type", "not_found"}}}})},
      {"error of unknown type", pack({{"v", 1}, {"error", value::map{{"type", "nope"}, {"message", "m"}}}})},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto r = decode_control_reply(c.bytes);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
  }
  auto future = decode_control_reply(pack({{"v", 9}, {"ok", 1}}));
  REQUIRE_FALSE(future);
  CHECK(future.error().code() == errc::unsupported_version);
}

TEST_CASE("prune and forget requests round-trip and are strictly checked", "[unit][control][retention]") {
  control_request prune;
  prune.op = control_op::prune;
  prune.older_than_ms = 86'400'000;
  auto p = decode_control_request(encode(prune));
  REQUIRE(p);
  CHECK(p->op == control_op::prune);
  CHECK(p->older_than_ms == 86'400'000);
  CHECK(std::string{subject_verb(control_op::prune)} == "prune");

  control_request forget;
  forget.op = control_op::forget;
  forget.workflow_id = "wf-1";
  auto f = decode_control_request(encode(forget));
  REQUIRE(f);
  CHECK(f->op == control_op::forget);
  CHECK(f->workflow_id == "wf-1");
  CHECK(std::string{subject_verb(control_op::forget)} == "forget");

  struct bad_case {
    const char* name;
    std::string bytes;
    const char* says;
  };
  const auto longest = defaults::max_expires.count();
  bad_case cases[] = {
      {"prune without an age", pack({{"v", 1}, {"op", "prune"}}), "'older_than_ms'"},
      {"prune of a negative age", pack({{"v", 1}, {"op", "prune"}, {"older_than_ms", -1}}), "'older_than_ms'"},
      {"prune past the longest age", pack({{"v", 1}, {"op", "prune"}, {"older_than_ms", longest + 1}}),
       "'older_than_ms'"},
      {"prune of a string age", pack({{"v", 1}, {"op", "prune"}, {"older_than_ms", "1d"}}), "'older_than_ms'"},
      {"prune naming a workflow", pack({{"v", 1}, {"op", "prune"}, {"older_than_ms", 0}, {"id", "wf"}}),
       "field 'id' is not part of op"},
      {"forget without an id", pack({{"v", 1}, {"op", "forget"}}), "'id'"},
      {"forget of an empty id", pack({{"v", 1}, {"op", "forget"}, {"id", ""}}), "'id'"},
      {"forget with an age", pack({{"v", 1}, {"op", "forget"}, {"id", "wf"}, {"older_than_ms", 5}}),
       "field 'older_than_ms' is not part of op"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto r = decode_control_request(c.bytes);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
    CHECK(r.error().message().find(c.says) != std::string::npos);
  }
  auto edge = decode_control_request(pack({{"v", 1}, {"op", "prune"}, {"older_than_ms", longest}}));
  REQUIRE(edge);
  CHECK(edge->older_than_ms == longest);
}
