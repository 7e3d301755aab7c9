#include "trellis/envelope.hpp"

#include "support/envelopes.hpp"
#include "support/values.hpp"

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using trellis::errc;
using trellis::value;
using trellis::detail::decode;
using trellis::detail::encode;
using trellis::detail::envelope;
using trellis::detail::envelope_limits;
using trellis::detail::envelope_type;
using trellis::detail::outcome_status;
// The envelope builders, field lists and hand-packing helpers.
using namespace trellis::test;

namespace {

envelope sample_task() {
  auto e = task_envelope("wf-1:3:2", {"wf-1", 3, 2, "orders.charge"}, "payments");
  e.args = {
      "A-17", 42, -7, 2.5, 1.0, nullptr, true, trellis::binary{{0xde, 0xad}}, value::array{1, value::array{"nested"}}};
  e.kwargs = {{"currency", "EUR"}, {"dry_run", false}, {"lines", value::map{{"sku", "X-1"}, {"qty", 3}}}};
  e.options = {{"idempotency_key", "wf-1:3"}, {"time_limit_ms", 30000}};
  e.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.sent_at = 1'700'000'000'123;
  return e;
}

envelope sample_outcome(outcome_status status) {
  auto e =
      outcome_envelope("wf-1:3:2:outcome", {"wf-1", 3, 2, "orders.charge"}, status,
                       value::map{{"charged", 1999}, {"receipt", "R-9"}}, "std::runtime_error", "payment gateway busy");
  e.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.sent_at = 1'700'000'000'456;
  e.duration_us = 15'250;
  return e;
}

envelope sample_submit() {
  auto e = submit_envelope(
      "submit-77", "order-A-17",
      value::map{{"chain", value::array{value::map{{"task", "orders.reserve"}, {"args", value::array{"A-17"}}},
                                        value::map{{"task", "orders.charge"}, {"args", value::array{}}}}}},
      "order-A-17");
  e.sent_at = 1'700'000'000'789;
  return e;
}

field_list task_fields() {
  return {{"v", 1},
          {"type", "task"},
          {"id", "wf-1:0:1"},
          {"sent_at", 1'700'000'000'000},
          {"wf", "wf-1"},
          {"node", 0},
          {"attempt", 1},
          {"task", "orders.reserve"},
          {"queue", "default"},
          {"args", value::array{"A-17"}},
          {"kwargs", value::map{}},
          {"options", value::map{}}};
}

field_list outcome_fields(const std::string& status) {
  field_list f{{"v", 1},    {"type", "outcome"}, {"id", "wf-1:0:1:o"},       {"sent_at", 1},     {"wf", "wf-1"},
               {"node", 0}, {"attempt", 1},      {"task", "orders.reserve"}, {"status", status}, {"duration_us", 10}};
  if (status == "success") {
    f.emplace_back("result", "R-1");
  } else {
    f.emplace_back("error_type", "std::runtime_error");
    f.emplace_back("error_message", "boom");
  }
  return f;
}

/// Decodes `bytes`, requires failure, and checks the code and a telling part of the message.
void require_rejected(const std::string& bytes, errc code, const std::string& text,
                      const envelope_limits& limits = {}) {
  auto e = decode(bytes, limits);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == code);
  CHECK_THAT(e.error().message(), Catch::Contains(text));
}

}  // namespace

TEST_CASE("envelope type and status names are the wire spellings", "[unit][envelope]") {
  CHECK(std::string{to_string(envelope_type::task)} == "task");
  CHECK(std::string{to_string(envelope_type::outcome)} == "outcome");
  CHECK(std::string{to_string(envelope_type::submit)} == "submit");
  CHECK(std::string{to_string(outcome_status::success)} == "success");
  CHECK(std::string{to_string(outcome_status::failure)} == "failure");
  CHECK(std::string{to_string(outcome_status::retry)} == "retry");
  CHECK(std::string{to_string(outcome_status::rejected)} == "rejected");
}

TEST_CASE("every envelope type round-trips with all its fields", "[unit][envelope]") {
  std::vector<std::pair<std::string, envelope>> samples{
      {"task", sample_task()},
      {"outcome success", sample_outcome(outcome_status::success)},
      {"outcome failure", sample_outcome(outcome_status::failure)},
      {"outcome retry", sample_outcome(outcome_status::retry)},
      {"outcome rejected", sample_outcome(outcome_status::rejected)},
      {"submit", sample_submit()},
  };
  for (const auto& [name, original] : samples) {
    CAPTURE(name);
    auto bytes = encode(original);
    auto decoded = decode(bytes);
    REQUIRE(decoded);
    CHECK(envelope_difference(original, *decoded) == "");
    CHECK(encode(*decoded) == bytes);
  }
}

TEST_CASE("an envelope without trace leaves the field out and reads back empty", "[unit][envelope]") {
  auto e = sample_task();
  e.trace.clear();
  auto bytes = encode(e);
  CHECK(bytes.find("trace") == std::string::npos);
  auto decoded = decode(bytes);
  REQUIRE(decoded);
  CHECK(decoded->trace.empty());
  CHECK(envelope_difference(e, *decoded) == "");
}

TEST_CASE("fields a type does not use are not encoded", "[unit][envelope]") {
  auto e = sample_task();
  e.payload = "ignored";
  e.error_message = "ignored";
  e.duration_us = 99;
  auto decoded = decode(encode(e));
  REQUIRE(decoded);
  CHECK(decoded->payload.is_nil());
  CHECK(decoded->error_message.empty());
  CHECK(decoded->duration_us == 0);

  auto success = sample_outcome(outcome_status::success);
  success.error_type = "ignored";
  auto decoded_success = decode(encode(success));
  REQUIRE(decoded_success);
  CHECK(decoded_success->error_type.empty());

  // Other outcomes carry a payload only as their optional "detail".
  auto failure = sample_outcome(outcome_status::failure);
  auto decoded_failure = decode(encode(failure));
  REQUIRE(decoded_failure);
  CHECK(decoded_failure->payload.is_nil());
  failure.payload = 5;
  decoded_failure = decode(encode(failure));
  REQUIRE(decoded_failure);
  CHECK(decoded_failure->payload == value(5));
}

TEST_CASE("the hand-packed baselines used by the rejection tests decode", "[unit][envelope]") {
  // Each rejection test changes exactly one thing in one of these.
  REQUIRE(decode(pack_fields(task_fields())));
  REQUIRE(decode(pack_fields(outcome_fields("success"))));
  REQUIRE(decode(pack_fields(outcome_fields("failure"))));
  // Field order on the wire does not matter.
  auto reversed = task_fields();
  std::reverse(reversed.begin(), reversed.end());
  REQUIRE(decode(pack_fields(reversed)));
}

TEST_CASE("input over max_bytes is payload_too_large before any parsing", "[unit][envelope]") {
  auto bytes = encode(sample_task());
  envelope_limits limits;
  limits.max_bytes = bytes.size() - 1;
  require_rejected(bytes, errc::payload_too_large, "exceeds the limit of " + std::to_string(limits.max_bytes), limits);
  // Garbage of the same size reports size too, proving nothing was parsed.
  require_rejected(std::string(bytes.size(), '\xc1'), errc::payload_too_large, "exceeds the limit", limits);
  limits.max_bytes = bytes.size();
  CHECK(decode(bytes, limits));
}

TEST_CASE("bytes that are not one msgpack map are malformed", "[unit][envelope]") {
  SECTION("empty input") { require_rejected("", errc::malformed_envelope, "not a msgpack map"); }
  SECTION("text") { require_rejected("hello, world", errc::malformed_envelope, "not a msgpack map"); }
  SECTION("an array") {
    require_rejected(raw_msgpack([](auto& pk) { pk.pack_array(0); }), errc::malformed_envelope, "not a msgpack map");
  }
  SECTION("a string") {
    require_rejected(raw_msgpack([](auto& pk) { pk.pack_str(0); }), errc::malformed_envelope, "not a msgpack map");
  }
  SECTION("a truncated map") {
    auto bytes = encode(sample_task());
    for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
      require_rejected(bytes.substr(0, cut), errc::malformed_envelope, "not a msgpack map");
    }
  }
  SECTION("trailing bytes after the map") {
    require_rejected(encode(sample_task()) + '\x00', errc::malformed_envelope, "trailing bytes");
  }
  SECTION("a map header claiming four billion entries") {
    require_rejected(std::string{"\xdf\xff\xff\xff\xff\xa1v\x01"}, errc::malformed_envelope, "truncated");
  }
  SECTION("an invalid byte inside") {
    auto bytes = pack_fields(with(task_fields(), "args", value::array{1}));
    auto at = bytes.find("args");
    REQUIRE(at != std::string::npos);
    REQUIRE(bytes[at + 5] == '\x01');
    bytes[at + 5] = '\xc1';
    require_rejected(bytes, errc::malformed_envelope, "0xc1");
  }
}

TEST_CASE("an envelope without a version is malformed", "[unit][envelope]") {
  require_rejected(pack_fields(without(task_fields(), "v")), errc::malformed_envelope, "missing field 'v'");
  require_rejected(pack_fields({}), errc::malformed_envelope, "missing field 'v'");
}

TEST_CASE("a version that is not an integer is malformed", "[unit][envelope]") {
  require_rejected(pack_fields(with(task_fields(), "v", "1")), errc::malformed_envelope,
                   "field 'v' must be int, got str");
  require_rejected(pack_fields(with(task_fields(), "v", 1.0)), errc::malformed_envelope,
                   "field 'v' must be int, got float");
}

TEST_CASE("a version other than 1 is unsupported_version, whatever else the envelope holds", "[unit][envelope]") {
  require_rejected(pack_fields(with(task_fields(), "v", 2)), errc::unsupported_version,
                   "envelope version 2 is not supported (this build reads version 1)");
  require_rejected(pack_fields(with(task_fields(), "v", 0)), errc::unsupported_version, "envelope version 0");
  require_rejected(pack_fields(with(task_fields(), "v", -1)), errc::unsupported_version, "envelope version -1");
  // A future envelope: new fields, renamed fields, a new type. Still a version problem.
  require_rejected(pack_fields({{"type", "batch"}, {"v", 2}, {"items", value::array{}}}), errc::unsupported_version,
                   "envelope version 2");
  auto huge = raw_msgpack([](auto& pk) {
    pk.pack_map(2);
    pk.pack_int(7);
    pk.pack_nil();
    pack_key(pk, "v");
    pk.pack_uint64(UINT64_MAX);
  });
  require_rejected(huge, errc::unsupported_version, "18446744073709551615");
  auto e = sample_task();
  e.v = 2;
  require_rejected(encode(e), errc::unsupported_version, "version 2");
}

TEST_CASE("an unknown envelope type is malformed and named", "[unit][envelope]") {
  require_rejected(pack_fields(with(task_fields(), "type", "bogus")), errc::malformed_envelope,
                   "unknown envelope type 'bogus'");
  require_rejected(pack_fields(with(task_fields(), "type", "bad\x01\xff")), errc::malformed_envelope,
                   "unknown envelope type 'bad\\x01\\xff'");
  require_rejected(pack_fields(with(task_fields(), "type", 1)), errc::malformed_envelope,
                   "field 'type' must be str, got int");
  require_rejected(pack_fields(without(task_fields(), "type")), errc::malformed_envelope, "missing field 'type'");
}

TEST_CASE("each missing required field is named", "[unit][envelope]") {
  for (const auto& [key, v] : task_fields()) {
    if (key == "v" || key == "type") {
      continue;  // covered above: those are checked first
    }
    CAPTURE(key);
    require_rejected(pack_fields(without(task_fields(), key)), errc::malformed_envelope, "missing field '" + key + "'");
  }
  require_rejected(pack_fields(without(outcome_fields("failure"), "wf")), errc::malformed_envelope,
                   "missing field 'wf'");
  require_rejected(pack_fields(without(outcome_fields("success"), "result")), errc::malformed_envelope,
                   "missing field 'result' in a success outcome");
  require_rejected(pack_fields(without(outcome_fields("retry"), "error_message")), errc::malformed_envelope,
                   "missing field 'error_message' in a retry outcome");
  require_rejected(
      pack_fields({{"v", 1}, {"type", "submit"}, {"id", "s"}, {"sent_at", 0}, {"wf", "w"}, {"options", value::map{}}}),
      errc::malformed_envelope, "missing field 'canvas'");
}

TEST_CASE("a field of the wrong type is malformed, naming field and both kinds", "[unit][envelope]") {
  require_rejected(pack_fields(with(task_fields(), "node", "3")), errc::malformed_envelope,
                   "field 'node' must be int, got str");
  require_rejected(pack_fields(with(task_fields(), "id", 5)), errc::malformed_envelope,
                   "field 'id' must be str, got int");
  require_rejected(pack_fields(with(task_fields(), "args", value::map{})), errc::malformed_envelope,
                   "field 'args' must be array, got map");
  require_rejected(pack_fields(with(task_fields(), "kwargs", value::array{})), errc::malformed_envelope,
                   "field 'kwargs' must be map, got array");
  require_rejected(pack_fields(with(task_fields(), "options", nullptr)), errc::malformed_envelope,
                   "field 'options' must be map, got nil");
  require_rejected(pack_fields(with(task_fields(), "sent_at", 1.5)), errc::malformed_envelope,
                   "field 'sent_at' must be int, got float");
  require_rejected(pack_fields(with(task_fields(), "trace", trellis::binary{})), errc::malformed_envelope,
                   "field 'trace' must be str, got bin");
  require_rejected(pack_fields(with(outcome_fields("success"), "status", true)), errc::malformed_envelope,
                   "field 'status' must be str, got bool");
  require_rejected(pack_fields(with(outcome_fields("success"), "duration_us", "1")), errc::malformed_envelope,
                   "field 'duration_us' must be int, got str");
}

TEST_CASE("integers outside a field's range are malformed", "[unit][envelope]") {
  require_rejected(pack_fields(with(task_fields(), "node", std::int64_t{1} << 31)), errc::malformed_envelope,
                   "field 'node' is out of range: 2147483648");
  require_rejected(pack_fields(with(task_fields(), "attempt", -(std::int64_t{1} << 31) - 1)), errc::malformed_envelope,
                   "field 'attempt' is out of range");
  // A uint64 beyond INT64_MAX cannot be made from a value, so it is appended raw.
  auto big = pack_fields(without(task_fields(), "sent_at"), 1, [](auto& pk) {
    pack_key(pk, "sent_at");
    pk.pack_uint64(UINT64_MAX);
  });
  require_rejected(big, errc::malformed_envelope, "field 'sent_at' is out of range: 18446744073709551615");
}

TEST_CASE("an unknown field is malformed and named", "[unit][envelope]") {
  require_rejected(pack_fields(plus(task_fields(), "x", 1)), errc::malformed_envelope, "unknown field 'x'");
  // A field of another envelope type is unknown here too.
  require_rejected(pack_fields(plus(task_fields(), "status", "success")), errc::malformed_envelope,
                   "unknown field 'status' in a task envelope");
  require_rejected(pack_fields(plus(task_fields(), std::string(100, 'k'), 1)), errc::malformed_envelope,
                   "unknown field '" + std::string(64, 'k') + "...'");
}

TEST_CASE("a non-string field name is malformed", "[unit][envelope]") {
  auto bytes = pack_fields(task_fields(), 1, [](auto& pk) {
    pk.pack_int(9);
    pk.pack_nil();
  });
  require_rejected(bytes, errc::malformed_envelope, "field names must be str, got int");
}

TEST_CASE("an outcome carries a result or an error, never both", "[unit][envelope]") {
  require_rejected(pack_fields(plus(outcome_fields("success"), "error_type", "x")), errc::malformed_envelope,
                   "unexpected field 'error_type' in a success outcome");
  require_rejected(pack_fields(plus(outcome_fields("failure"), "result", 1)), errc::malformed_envelope,
                   "unexpected field 'result' in a failure outcome");
  require_rejected(pack_fields(plus(outcome_fields("success"), "detail", 1)), errc::malformed_envelope,
                   "unexpected field 'detail' in a success outcome");
  require_rejected(pack_fields(with(outcome_fields("failure"), "status", "exploded")), errc::malformed_envelope,
                   "unknown outcome status 'exploded'");
}

TEST_CASE("a duplicate field is malformed", "[unit][envelope]") {
  require_rejected(pack_fields(plus(task_fields(), "id", "again")), errc::malformed_envelope, "duplicate field 'id'");
  require_rejected(pack_fields(plus(task_fields(), "v", 1)), errc::malformed_envelope, "duplicate field 'v'");
  require_rejected(pack_fields(plus(task_fields(), "type", "task")), errc::malformed_envelope,
                   "duplicate field 'type'");
}

TEST_CASE("values inside an envelope follow the value strictness rules", "[unit][envelope]") {
  SECTION("duplicate map keys") {
    auto bytes = pack_fields(without(task_fields(), "kwargs"), 1, [](auto& pk) {
      pack_key(pk, "kwargs");
      pk.pack_map(2);
      pack_key(pk, "a");
      pk.pack_int(1);
      pack_key(pk, "a");
      pk.pack_int(2);
    });
    require_rejected(bytes, errc::malformed_envelope, "field 'kwargs': duplicate map key 'a'");
  }
  SECTION("ext types") {
    auto bytes = pack_fields(without(task_fields(), "args"), 1, [](auto& pk) {
      pack_key(pk, "args");
      pk.pack_array(1);
      pk.pack_ext(2, 1);
      pk.pack_ext_body("ab", 2);
    });
    require_rejected(bytes, errc::malformed_envelope, "field 'args': msgpack ext type 1 is not supported");
  }
  SECTION("unsigned integers above INT64_MAX") {
    auto bytes = pack_fields(without(outcome_fields("success"), "result"), 1, [](auto& pk) {
      pack_key(pk, "result");
      pk.pack_uint64(UINT64_MAX);
    });
    require_rejected(bytes, errc::malformed_envelope, "field 'result': integer 18446744073709551615");
  }
}

TEST_CASE("values nested deeper than max_depth are payload_too_large", "[unit][envelope]") {
  envelope_limits limits;
  limits.max_depth = 8;
  // args itself is one level, so its elements may nest 7 deep.
  auto at_limit = sample_task();
  at_limit.args = {nested(7)};
  CHECK(decode(encode(at_limit), limits));
  auto too_deep = sample_task();
  too_deep.args = {nested(8)};
  require_rejected(encode(too_deep), errc::payload_too_large, "deeper than 8 levels", limits);

  auto submit = sample_submit();
  submit.payload = nested(8);
  CHECK(decode(encode(submit), limits));
  submit.payload = nested(9);
  require_rejected(encode(submit), errc::payload_too_large, "deeper than 8 levels", limits);

  // The default limit holds against an absurdly deep message.
  std::string deep = pack_fields(without(task_fields(), "args"), 1, [](auto& pk) { pack_key(pk, "args"); });
  deep += std::string(100'000, '\x91') + '\x01';
  require_rejected(deep, errc::payload_too_large, "deeper than 64 levels");
}
