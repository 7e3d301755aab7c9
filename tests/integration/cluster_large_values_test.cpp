// Messages larger than one NATS message, over a default nats-server (1 MiB
// max_payload): a submission, a task's arguments and a chord body's input
// travel in pieces through the uploads stream, and nothing of them is left
// there once they are settled.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::count_rows;

json outcome_of(const std::string& line) { return trellis::test::parse_outcome_line(line); }

/// `TRELLIS_<NS>_UPLOADS`, the stream of the pieces.
std::string upload_stream(const std::string& ns) { return trellis::detail::subject_space::make(ns)->upload_stream(); }

/// Runs `flow` through `trellis submit --wait` on a cluster of a dispatcher
/// and two workers, and returns its outcome line.
json run_on_cluster(cluster_processes& c, const json& flow) {
  c.start_dispatcher(c.db());
  c.start_worker({"--concurrency", "2"});
  c.start_worker({"--concurrency", "2"});
  auto file = trellis::test::write_file(c.dir(), "flow.json", flow.dump());
  auto r = c.submit(file, {"--wait"});
  INFO("stdout:\n" << r.out.substr(0, 2000) << "\nstderr:\n" << r.err << "\n" << c.logs());
  REQUIRE(r.status == 0);
  return outcome_of(r.last_line());
}

/// Waits until the uploads stream holds no piece: each was removed once its
/// submission was answered or its message acked.
void check_no_piece_left(cluster_processes& c) {
  auto stream = upload_stream(c.ns());
  CHECK(trellis::test::wait_until(
      [&] {
        auto s = c.server().stream_report(stream);
        return !s.is_null() && s.value("state", json::object()).value("messages", -1) == 0;
      },
      trellis::test::max_test_wait, "every piece to be removed from the uploads stream"));
}

}  // namespace

TEST_CASE(
    "Over a default nats-server, a group of 2,000 tasks with 10 KiB arguments (a 20 MB submission) is sent in "
    "pieces and runs",
    "[integration][nats][large]") {
  cluster_processes c{"largesubmit", {}};
  constexpr int members = 2000;
  constexpr std::size_t argument = 10 * 1024;
  json header = json::array();
  for (int i = 0; i < members; ++i) {
    header.push_back({{"task", "identity"}, {"args", {std::string(argument, static_cast<char>('a' + i % 26))}}});
  }
  // The body gets every result at once: a 20 MB task message, in pieces too.
  auto out = run_on_cluster(c, {{"chord", {{"header", header}, {"body", {{"task", "measure"}}}}}});
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == members * argument);
  CHECK(count_rows(c.db(), "SELECT count(*) FROM dead_letters") == 0);
  check_no_piece_left(c);
}

TEST_CASE(
    "Over a default nats-server, a chord of 1,000 whose header results add up to 100 MB runs its body once with "
    "all of them",
    "[integration][nats][large]") {
  cluster_processes c{"largechord", {}};
  constexpr int members = 1000;
  constexpr std::int64_t result = 100'000;
  json header = json::array();
  for (int i = 0; i < members; ++i) {
    header.push_back({{"task", "blob"}, {"args", {result}}});
  }
  auto out = run_on_cluster(c, {{"chord", {{"header", header}, {"body", {{"task", "measure"}}}}}});
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == members * result);
  CHECK(count_rows(c.db(), "SELECT count(*) FROM nodes WHERE task = 'measure' AND state = 3 AND attempt = 1") == 1);
  check_no_piece_left(c);
}

TEST_CASE("Over a default nats-server, a result larger than one message travels in pieces",
          "[integration][nats][large]") {
  cluster_processes c{"largeresult", {}};
  constexpr std::int64_t result = 3 * 1024 * 1024;
  auto out = run_on_cluster(c, {{"chain", {{{"task", "blob"}, {"args", {result}}}, {{"task", "identity"}}}}});
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == std::string(static_cast<std::size_t>(result), 'b'));
  check_no_piece_left(c);
}

TEST_CASE("Past --max-submission-bytes the client refuses the workflow before anything is sent, naming the limit",
          "[integration][nats][large]") {
  cluster_processes c{"largerefused", {}};
  json group = json::array();
  for (int i = 0; i < 100; ++i) {
    group.push_back({{"task", "identity"}, {"args", {std::string(1024, 'x')}}});
  }
  auto file = trellis::test::write_file(c.dir(), "flow.json", json{{"group", group}}.dump());
  auto r = c.submit(file, {"--max-submission-bytes", "65536"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("max_submission_bytes (65536)"));
  CHECK(r.out.empty());
}
