// Crash recovery: a `trellis-demo run` killed with SIGKILL at a chosen moment
// loses nothing, and `trellis-demo resume` finishes the workflow with every
// step's effect applied once.

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::line_count;
using trellis::test::temp_dir;
using trellis::test::write_file;

/// Starts `trellis-demo run FILE --db DB` in the background.
std::unique_ptr<trellis::test::child_process> start_run(const temp_dir& dir, const std::string& file,
                                                        const std::string& db) {
  return std::make_unique<trellis::test::child_process>(
      // Two handler threads whatever the machine, so the timing below holds.
      std::vector<std::string>{TRELLIS_DEMO_BIN, "run", file, "--db", db, "--concurrency", "2"}, dir.file("run.out"),
      dir.file("run.err"));
}

/// Runs `trellis-demo resume` on `db` and checks that it finished workflow
/// `id` with SUCCESS, printed as its one outcome line; returns that line.
json resume_to_success(const temp_dir& dir, const std::string& db, const std::string& id) {
  auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, dir.file("resume"),
                                      trellis::test::max_test_wait);
  INFO("resume stdout:\n" << r.out << "\nresume stderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.status == 0);
  auto lines = r.lines();
  REQUIRE(lines.size() == 1);
  auto outcome = json::parse(lines.front());
  CHECK(outcome["id"] == id);
  CHECK(outcome["state"] == "SUCCESS");
  return outcome;
}

/// The one unfinished workflow the killed run left behind.
std::string unfinished_workflow(const std::string& db) {
  auto unfinished = trellis::test::open_store(db)->unfinished_workflows();
  REQUIRE(unfinished);
  REQUIRE(unfinished->size() == 1);
  return unfinished->front().id;
}

}  // namespace

TEST_CASE("a run killed in the middle of a chord header is finished by resume, each step applied once",
          "[integration][recovery]") {
  // 40 header members of 50 ms on a couple of handler threads take about a
  // second, so the kill lands after a few members and long before the last.
  constexpr int header_size = 40;
  constexpr int sleep_ms = 50;
  temp_dir dir;
  auto db = dir.file("store.db");
  auto effect = dir.file("body-ran.txt");
  json header = json::array();
  for (int i = 0; i < header_size; ++i) {
    header.push_back(json{{"task", "sleep_ms"}, {"args", json::array({sleep_ms})}});
  }
  // The body sums the header, then hands the sum to a group whose second
  // member leaves one line in `effect` each time it runs.
  json touch = {{"task", "touch"}, {"args", json::array({effect})}, {"options", {{"immutable", true}}}};
  json body = {{"chain", json::array({json{{"task", "xsum"}},
                                      json{{"group", json::array({json{{"task", "identity"}}, touch})}}})}};
  json flow = {{"chord", {{"header", header}, {"body", body}}}};
  auto file = write_file(dir, "chord.json", flow.dump());
  constexpr std::int64_t leaves = header_size + 3;  // header, xsum, identity, touch

  auto run = start_run(dir, file, db);
  REQUIRE(trellis::test::wait_until(
      [&] { return trellis::test::try_count(db, "SELECT count(*) FROM nodes WHERE state = 3").value_or(0) >= 4; },
      trellis::test::max_test_wait, "at least 4 chord header members recorded as SUCCESS"));
  run->kill(SIGKILL);
  REQUIRE(run->wait() == 128 + SIGKILL);

  INFO("run stdout:\n" << run->stdout_text() << "\nrun stderr:\n" << run->stderr_text());
  auto id = unfinished_workflow(db);
  auto done_before = trellis::test::try_count(db, "SELECT count(*) FROM nodes WHERE state = 3");
  REQUIRE(done_before);
  REQUIRE(*done_before >= 4);
  REQUIRE(*done_before < header_size);  // the kill landed inside the header
  REQUIRE_FALSE(std::filesystem::exists(effect));

  auto outcome = resume_to_success(dir, db, id);

  CHECK(outcome["result"] == json::parse("[2000, 1]"));
  CHECK(outcome["error"].is_null());
  // Every leaf has exactly one row, in SUCCESS; the body's effect happened once.
  auto nodes = trellis::test::open_store(db)->nodes_of(id);
  REQUIRE(nodes);
  CHECK(static_cast<std::int64_t>(nodes->size()) == leaves);
  for (const auto& n : *nodes) {
    CHECK(n.state == trellis::node_state::success);
  }
  CHECK(line_count(effect) == 1);
  CHECK(trellis::test::open_store(db)->unfinished_workflows()->empty());
}

TEST_CASE("a run killed while a retry is pending is finished by resume, which keeps counting attempts",
          "[integration][recovery]") {
  // flaky(2) fails attempts 1 and 2; each retry waits 1.5 s, a wide window in
  // which the kill surely finds the retry scheduled and not yet run.
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "flaky.json", R"({"task": "flaky", "args": [2], "options": {"retry":
      {"max_retries": 3, "countdown_ms": 1500, "backoff": "fixed", "jitter": false}}})");

  auto run = start_run(dir, file, db);
  REQUIRE(trellis::test::wait_until(
      [&] { return trellis::test::try_count(db, "SELECT count(*) FROM nodes WHERE state = 5 AND attempt = 1") == 1; },
      trellis::test::max_test_wait, "the node row in RETRY after attempt 1 failed"));
  run->kill(SIGKILL);
  REQUIRE(run->wait() == 128 + SIGKILL);

  INFO("run stdout:\n" << run->stdout_text() << "\nrun stderr:\n" << run->stderr_text());
  auto id = unfinished_workflow(db);
  REQUIRE(trellis::test::try_count(db, "SELECT count(*) FROM attempts") == 1);

  auto outcome = resume_to_success(dir, db, id);

  CHECK(outcome["result"] == 3);
  auto store = trellis::test::open_store(db);
  auto nodes = store->nodes_of(id);
  REQUIRE(nodes);
  REQUIRE(nodes->size() == 1);
  CHECK(nodes->front().state == trellis::node_state::success);
  CHECK(nodes->front().attempt == 3);
  auto attempts = store->attempts_of(id);
  REQUIRE(attempts);
  REQUIRE(attempts->size() == 2);
  CHECK(attempts->at(0).attempt == 1);
  CHECK(attempts->at(1).attempt == 2);
}

TEST_CASE("SIGTERM drains a run: the step in hand finishes and is committed, resume does the rest",
          "[integration][recovery]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto first = dir.file("first.txt");
  auto last = dir.file("last.txt");
  // touch(first) -> sleep_ms(400) -> touch(last), one handler thread.
  json flow = {
      {"chain",
       json::array({json{{"task", "touch"}, {"args", json::array({first})}},
                    json{{"task", "sleep_ms"}, {"args", json::array({400})}, {"options", {{"immutable", true}}}},
                    json{{"task", "touch"}, {"args", json::array({last})}, {"options", {{"immutable", true}}}}})}};
  auto file = write_file(dir, "chain.json", flow.dump());
  trellis::test::child_process run{
      {TRELLIS_DEMO_BIN, "run", file, "--db", db, "--concurrency", "1"}, dir.file("run.out"), dir.file("run.err")};
  REQUIRE(trellis::test::wait_until([&] { return line_count(first) == 1; }, trellis::test::max_test_wait,
                                    "the first step to leave its line"));
  run.kill(SIGTERM);
  INFO("run stderr:\n" << run.stderr_text());
  CHECK(run.wait() == 143);
  CHECK(run.stderr_text().find("draining") != std::string::npos);

  // The drain committed the first step (and the sleep if it had started):
  // resume must not run the first step again.
  auto id = unfinished_workflow(db);
  resume_to_success(dir, db, id);
  CHECK(line_count(first) == 1);
  CHECK(line_count(last) == 1);
}
