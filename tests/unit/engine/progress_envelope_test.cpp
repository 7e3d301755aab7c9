// The progress envelope: what a worker sends while a handler runs. It is
// decoded as strictly as the others, and its checks are the ones
// task_context makes, so that a dispatcher stores nothing a handler could
// not have reported.

#include "trellis/envelope.hpp"
#include "trellis/task.hpp"

#include "support/envelopes.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

using trellis::errc;
using trellis::task_progress;
using trellis::value;
using trellis::detail::decode;
using trellis::detail::encode;
using trellis::detail::envelope_type;
using namespace trellis::test;

namespace {

task_progress full_report() {
  task_progress p;
  p.done = 7;
  p.total = 20;
  p.message = "rows imported";
  p.state = "IMPORTING";
  return p;
}

field_list progress_fields() {
  return {{"v", 1},       {"type", "progress"}, {"id", "wf-1:2:1:progress:1"}, {"sent_at", 1}, {"wf", "wf-1"},
          {"node", 2},    {"attempt", 1},       {"task", "orders.import"},     {"done", 7},    {"total", 20},
          {"message", "rows"}, {"state", "IMPORTING"}};
}

void require_rejected(const std::string& bytes, errc code, const std::string& text) {
  auto e = decode(bytes);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == code);
  CHECK_THAT(e.error().message(), Catch::Contains(text));
}

}  // namespace

TEST_CASE("a progress envelope round-trips, each part optional", "[unit][envelope][progress]") {
  CHECK(std::string{to_string(envelope_type::progress)} == "progress");
  std::vector<task_progress> reports(4, full_report());
  reports[1].total.reset();
  reports[1].message.clear();
  reports[2].done.reset();  // only a custom state
  reports[2].total.reset();
  reports[2].message.clear();
  reports[3].state.clear();  // only counts
  for (const auto& report : reports) {
    auto e = progress_envelope("wf-1:2:1:progress:1", {"wf-1", 2, 1, "orders.import"}, report);
    e.sent_at = 1'700'000'000'000;
    auto bytes = encode(e);
    auto decoded = decode(bytes);
    REQUIRE(decoded);
    CHECK(envelope_difference(e, *decoded) == "");
    CHECK(encode(*decoded) == bytes);
  }
  // An empty part is left out, not written empty.
  auto bare = encode(progress_envelope("x", {"wf-1", 2, 1, "t"}, task_progress{}));
  CHECK(bare.find("message") == std::string::npos);
  CHECK(bare.find("done") == std::string::npos);
}

TEST_CASE("the hand-packed progress baseline decodes", "[unit][envelope][progress]") {
  auto e = decode(pack_fields(progress_fields()));
  REQUIRE(e);
  CHECK(e->progress.done == 7);
  CHECK(e->progress.total == 20);
  CHECK(e->progress.state == "IMPORTING");
}

TEST_CASE("a progress envelope is decoded strictly", "[unit][envelope][progress]") {
  // Its address is required, as an outcome's.
  for (const auto* key : {"wf", "node", "attempt", "task", "id", "sent_at"}) {
    CAPTURE(key);
    require_rejected(pack_fields(without(progress_fields(), key)), errc::malformed_envelope,
                     std::string{"missing field '"} + key + "'");
  }
  require_rejected(pack_fields(plus(progress_fields(), "status", "success")), errc::malformed_envelope,
                   "unknown field 'status' in a progress envelope");
  require_rejected(pack_fields(plus(progress_fields(), "result", 1)), errc::malformed_envelope,
                   "unknown field 'result' in a progress envelope");
  require_rejected(pack_fields(with(progress_fields(), "done", "7")), errc::malformed_envelope,
                   "field 'done' must be int, got str");
  require_rejected(pack_fields(with(progress_fields(), "done", -1)), errc::malformed_envelope,
                   "field 'done' is out of range: -1");
  require_rejected(pack_fields(with(progress_fields(), "total", -5)), errc::malformed_envelope,
                   "field 'total' is out of range: -5");
  require_rejected(pack_fields(with(progress_fields(), "message", std::string(257, 'm'))), errc::malformed_envelope,
                   "field 'message' is 257 bytes long; at most 256");
  require_rejected(pack_fields(with(progress_fields(), "message", 3)), errc::malformed_envelope,
                   "field 'message' must be str, got int");
  require_rejected(pack_fields(with(progress_fields(), "state", "uploading")), errc::malformed_envelope,
                   "field 'state': custom state name 'uploading' may hold only A-Z, 0-9 and _");
  require_rejected(pack_fields(with(progress_fields(), "state", "SUCCESS")), errc::malformed_envelope,
                   "is a built-in state");
  require_rejected(pack_fields(with(progress_fields(), "state", "")), errc::malformed_envelope,
                   "must not be empty");
  require_rejected(pack_fields(with(progress_fields(), "state", std::string(65, 'A'))), errc::malformed_envelope,
                   "65 characters long; at most 64");
  // A newer contract is still refused by its version first.
  require_rejected(pack_fields(with(progress_fields(), "v", 2)), errc::unsupported_version, "version 2");
}

TEST_CASE("task_context checks what a handler reports and sends it to its sink", "[unit][progress]") {
  struct recording_sink : trellis::progress_sink {
    std::vector<task_progress> seen;
    void report(const task_progress& latest) override { seen.push_back(latest); }
  };
  auto sink = std::make_shared<recording_sink>();
  trellis::task_context ctx{"import", "wf-1", 2, 1, "wf-1/2", {}, {}, sink};
  ctx.report_progress(3, 10, "rows");
  ctx.set_state("UPLOADING");
  ctx.report_progress(4);
  REQUIRE(sink->seen.size() == 3);
  CHECK(sink->seen[0].done == 3);
  CHECK(sink->seen[0].total == 10);
  CHECK(sink->seen[0].state.empty());
  CHECK(sink->seen[1].state == "UPLOADING");
  CHECK(sink->seen[1].done == 3);  // a state keeps the counts
  CHECK(sink->seen[2].state == "UPLOADING");  // and counts keep the state
  CHECK_FALSE(sink->seen[2].total);
  CHECK(sink->seen[2].message.empty());
  ctx.clear_state();
  CHECK(sink->seen.back().state.empty());

  CHECK_THROWS_AS(ctx.set_state("STARTED"), trellis::usage_error);
  CHECK_THROWS_WITH(ctx.set_state("Uploading"), Catch::Contains("may hold only A-Z, 0-9 and _"));
  CHECK_THROWS_AS(ctx.set_state(""), trellis::usage_error);
  CHECK_THROWS_AS(ctx.report_progress(-1), trellis::usage_error);
  CHECK_THROWS_AS(ctx.report_progress(1, -2), trellis::usage_error);
  CHECK(sink->seen.size() == 4);  // nothing refused reached the sink

  // A long message is cut, never inside a UTF-8 character.
  std::string long_message(255, 'a');
  long_message += "\xc3\xa9tape";  // 'é' straddles byte 256
  ctx.report_progress(5, 10, long_message);
  CHECK(sink->seen.back().message == std::string(255, 'a'));

  // Without a sink (a handler called directly) reports go nowhere.
  trellis::task_context alone{"import", "wf-1", 2, 1, "wf-1/2", {}};
  alone.report_progress(1, 2, "ok");
  CHECK(alone.progress().done == 1);
}
