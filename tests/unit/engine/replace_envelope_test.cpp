// The replace envelope: a worker's outcome for an attempt whose handler
// replaced itself with a canvas. Decoded as strictly as an outcome; the
// canvas is any value here, parsed strictly by the dispatcher.

#include "trellis/envelope.hpp"

#include "support/envelopes.hpp"

#include <catch2/catch.hpp>

#include <string>

using trellis::errc;
using trellis::value;
using trellis::detail::decode;
using trellis::detail::encode;
using trellis::detail::envelope;
using trellis::detail::envelope_type;
using namespace trellis::test;

namespace {

field_list replace_fields() {
  return {{"v", 1},          {"type", "replace"}, {"id", "wf-1:2:1:outcome"},
          {"sent_at", 1},    {"wf", "wf-1"},      {"node", 2},
          {"attempt", 1},    {"task", "split"},   {"canvas", value::map{{"group", value::array{}}}},
          {"duration_us", 5}};
}

void require_rejected(const std::string& bytes, errc code, const std::string& text) {
  auto e = decode(bytes);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == code);
  CHECK_THAT(e.error().message(), Catch::Contains(text));
}

}  // namespace

TEST_CASE("a replace envelope round-trips with its canvas", "[unit][envelope][fanout]") {
  CHECK(std::string{to_string(envelope_type::replace)} == "replace");
  envelope e;
  e.type = envelope_type::replace;
  e.id = "wf-1:2:1:outcome";
  e.workflow_id = "wf-1";
  e.node = 2;
  e.attempt = 1;
  e.task = "split";
  e.payload = value::map{{"group", value::array{value::map{{"task", "identity"}, {"args", value::array{0}}}}}};
  e.sent_at = 1'700'000'000'000;
  e.duration_us = 42;
  auto bytes = encode(e);
  auto decoded = decode(bytes);
  REQUIRE(decoded);
  CHECK(envelope_difference(e, *decoded) == "");
  CHECK(encode(*decoded) == bytes);
  auto hand = decode(pack_fields(replace_fields()));
  REQUIRE(hand);
  CHECK(hand->type == envelope_type::replace);
  CHECK(hand->duration_us == 5);
}

TEST_CASE("a replace envelope is decoded strictly", "[unit][envelope][fanout]") {
  for (const auto* key : {"wf", "node", "attempt", "task", "canvas", "duration_us"}) {
    CAPTURE(key);
    require_rejected(pack_fields(without(replace_fields(), key)), errc::malformed_envelope,
                     std::string{"missing field '"} + key + "'");
  }
  require_rejected(pack_fields(plus(replace_fields(), "status", "success")), errc::malformed_envelope,
                   "unknown field 'status' in a replace envelope");
  require_rejected(pack_fields(plus(replace_fields(), "result", 1)), errc::malformed_envelope,
                   "unknown field 'result' in a replace envelope");
  require_rejected(pack_fields(with(replace_fields(), "duration_us", "5")), errc::malformed_envelope,
                   "field 'duration_us' must be int, got str");
  require_rejected(pack_fields(with(replace_fields(), "v", 2)), errc::unsupported_version, "version 2");
}
