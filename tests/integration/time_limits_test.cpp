// Time limits that hold, through `trellis-demo run` as a user runs a workflow
// file and in cluster mode: a hard limit ends the step within 200 ms of it
// whatever the handler does (`spin` never looks at cancellation), frees its
// slot for the next task, and does not hold the process's exit; a soft limit
// wakes a cooperative handler (`sleep_ms`) early.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/temp_dir.hpp"
#include "support/timed_run.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using std::chrono::steady_clock;
using trellis::test::command_result;
using trellis::test::run_workflow;
using trellis::test::temp_dir;
using trellis::test::write_file;

/// `trellis-demo status ID --db DB` of a finished run.
json status_of(const temp_dir& dir, const std::string& name, const json& outcome) {
  auto r = trellis::test::run_command(
      {TRELLIS_DEMO_BIN, "status", outcome["id"].get<std::string>(), "--db", dir.file(name + ".db")},
      dir.file(name + "-status"), trellis::test::max_test_wait);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(r.status == 0);
  return json::parse(r.last_line());
}

json spin(int ms, int time_limit_ms) {
  return {{"task", "spin"}, {"args", {ms}}, {"options", {{"time_limit_ms", time_limit_ms}}}};
}

}  // namespace

TEST_CASE("a spinning handler past its hard time limit fails the step, and the run exits long before the spin ends",
          "[integration][cli][time_limits]") {
  temp_dir dir;
  auto run = run_workflow(dir, "spin", spin(20'000, 300));
  CHECK(run.result.status == 1);
  CHECK(run.outcome["state"] == "FAILURE");
  CHECK(run.outcome["error"]["task"] == "spin");
  CHECK(run.outcome["error"]["type"] == "time_limit_exceeded");
  CHECK_THAT(run.outcome["error"]["message"].get<std::string>(), Catch::Contains("time limit of 300 ms"));
  // Start-up, the 300 ms limit, the 200 ms it may take at most, the drain:
  // far from the 20 s the abandoned spin still has to go.
  CHECK(run.took < std::chrono::seconds{5});
}

TEST_CASE("a sleeping handler wakes at its soft time limit and ends with soft_time_limit_exceeded",
          "[integration][cli][time_limits]") {
  temp_dir dir;
  auto run =
      run_workflow(dir, "soft", {{"task", "sleep_ms"}, {"args", {30'000}}, {"options", {{"soft_time_limit_ms", 200}}}});
  CHECK(run.result.status == 1);
  CHECK(run.outcome["state"] == "FAILURE");
  CHECK(run.outcome["error"]["type"] == "soft_time_limit_exceeded");
  CHECK(run.took < std::chrono::seconds{5});
}

TEST_CASE("a time-limit failure follows the retry policy and its filters, and stops its chain",
          "[integration][cli][time_limits]") {
  temp_dir dir;
  SECTION("retried within max_retries, then the chain stops at it") {
    auto limited = spin(20'000, 200);
    limited["options"]["retry"] = {{"max_retries", 1}, {"countdown_ms", 0}, {"jitter", false}};
    json add = {{"task", "add"}, {"args", {1, 2}}, {"options", {{"immutable", true}}}};
    json chain = {{"chain", json::array({limited, add})}};
    auto run = run_workflow(dir, "retried", chain);
    CHECK(run.result.status == 1);
    CHECK(run.outcome["state"] == "FAILURE");
    CHECK(run.outcome["error"]["task"] == "spin");
    CHECK(run.outcome["error"]["type"] == "time_limit_exceeded");
    auto status = status_of(dir, "retried", run.outcome);
    INFO(status.dump());
    REQUIRE_FALSE(status["nodes"].empty());
    CHECK(status["nodes"][0]["task"] == "spin");
    CHECK(status["nodes"][0]["attempt"] == 2);
    CHECK(status["nodes"][0]["state"] == "FAILURE");
    for (const auto& node : status["nodes"]) {
      CHECK_FALSE((node["task"] == "add" && node["state"] == "SUCCESS"));  // the chain stopped: add never ran
    }
    REQUIRE_FALSE(status["failed_attempts"].empty());
    CHECK(status["failed_attempts"][0]["type"] == "time_limit_exceeded");
  }
  SECTION("dont_retry_on time_limit_exceeded fails it on its first attempt") {
    auto limited = spin(20'000, 200);
    limited["options"]["retry"] = {
        {"max_retries", 3}, {"countdown_ms", 0}, {"dont_retry_on", json::array({"time_limit_exceeded"})}};
    auto run = run_workflow(dir, "filtered", limited);
    CHECK(run.outcome["state"] == "FAILURE");
    auto status = status_of(dir, "filtered", run.outcome);
    INFO(status.dump());
    CHECK(status["nodes"][0]["attempt"] == 1);
  }
}

TEST_CASE("with one handler thread, the task after an abandoned one runs on the freed slot",
          "[integration][cli][time_limits]") {
  temp_dir dir;
  json group = {{"group", json::array({spin(20'000, 300), {{"task", "add"}, {"args", {1, 2}}}})}};
  auto run = run_workflow(dir, "slot", group, {"--concurrency", "1"});
  CHECK(run.outcome["state"] == "FAILURE");
  CHECK(run.outcome["error"]["type"] == "time_limit_exceeded");
  CHECK(run.took < std::chrono::seconds{5});
  auto status = status_of(dir, "slot", run.outcome);
  INFO(status.dump());
  REQUIRE(status["nodes"].size() == 2);
  CHECK(status["nodes"][0]["task"] == "spin");
  CHECK(status["nodes"][0]["state"] == "FAILURE");
  CHECK(status["nodes"][1]["task"] == "add");
  CHECK(status["nodes"][1]["state"] == "SUCCESS");
}

TEST_CASE("in a cluster, a spin past its hard limit fails within the bound, and its worker still stops on SIGTERM",
          "[integration][nats][time_limits]") {
  trellis::test::cluster_processes c{"timelimit", {}};
  auto db = c.db();
  c.start_dispatcher(db);
  auto& worker = c.start_worker({"--concurrency", "1"});
  c.wait_running(worker);

  auto file = write_file(c.dir(), "spin.json", spin(60'000, 500).dump());
  auto started = steady_clock::now();
  auto& client = c.start_client(file, {"--wait"});
  auto status = client.wait_for(trellis::test::max_test_wait);
  auto took = steady_clock::now() - started;
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text() << "\n" << c.logs());
  REQUIRE(status);
  CHECK(*status == 1);
  auto out = trellis::test::parse_outcome_line(command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "time_limit_exceeded");
  CHECK(took < std::chrono::seconds{10});

  // The abandoned handler spins for most of a minute yet; the drain does
  // not wait for it.
  auto stop_started = steady_clock::now();
  worker.kill(SIGTERM);
  auto stopped = worker.wait_for(trellis::test::max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);
  CHECK(steady_clock::now() - stop_started < std::chrono::seconds{10});
}
