// The process log on stderr (docs/operations.md#logs): a warning for every
// failed attempt and every dead letter naming workflow, node, task and error
// type; --log-format json lines that parse; --log-level that filters; stdout
// left to the outcome line; cluster processes that start with JSON logs and
// never log their credentials, even at debug level.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/chain_check.hpp"
#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/outcome_line.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::nats_server_options;
using trellis::test::temp_dir;
using trellis::test::write_file;

/// `trellis-demo run` of one `fail` task with one retry, plus `extra` flags.
command_result run_failing(const temp_dir& dir, std::vector<std::string> extra) {
  auto file = write_file(dir, "fail.json",
                         R"({"task": "fail", "args": ["card \"declined\"\nsecond line"],
                             "options": {"retry": {"max_retries": 1, "countdown_ms": 10}}})");
  std::vector<std::string> argv{TRELLIS_DEMO_BIN, "run", file, "--db", dir.file("store.db")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = trellis::test::run_command(std::move(argv), dir.file("demo"), trellis::test::max_test_wait);
  REQUIRE_FALSE(r.timed_out);
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

/// The outcome line, alone on stdout; returns the workflow id.
std::string only_outcome(const command_result& r) {
  REQUIRE(lines_of(r.out).size() == 1);
  auto outcome = trellis::test::parse_outcome_line(r.last_line());
  CHECK(outcome["state"] == "FAILURE");
  return outcome["id"].get<std::string>();
}

}  // namespace

TEST_CASE("run logs a warning for each failed attempt and for the dead letter, as text", "[integration][cli][logs]") {
  temp_dir dir;
  auto r = run_failing(dir, {});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status == 1);
  auto id = only_outcome(r);

  std::vector<std::string> attempts;
  std::vector<std::string> dead_letters;
  for (const auto& line : lines_of(r.err)) {
    if (line.find(" WARN trellis-run: attempt ") != std::string::npos) {
      attempts.push_back(line);
    } else if (line.find(" WARN trellis-run: dead letter ") != std::string::npos) {
      dead_letters.push_back(line);
    }
  }
  REQUIRE(attempts.size() == 2);
  REQUIRE(dead_letters.size() == 1);
  for (const auto& line : {attempts[0], attempts[1], dead_letters[0]}) {
    // 2026-12-06T21:40:01.123Z WARN ...
    CHECK(line.size() > 25);
    CHECK(line[4] == '-');
    CHECK(line[10] == 'T');
    CHECK(line[23] == 'Z');
    CHECK_THAT(line, Catch::Contains("workflow=" + id) && Catch::Contains(" node=0 task=fail") &&
                         Catch::Contains(" error_type=std::runtime_error"));
    // The message's newline is escaped: the record stays on its line.
    CHECK_THAT(line, Catch::Contains(R"(card "declined"\nsecond line)"));
  }
  CHECK_THAT(attempts[0], Catch::Contains("attempt=1") && Catch::Contains("retry 1 of 1"));
  CHECK_THAT(attempts[1], Catch::Contains("attempt=2") && Catch::Contains("no retry left"));
  CHECK_THAT(dead_letters[0], Catch::Contains("dead letter (task_failed)"));
}

TEST_CASE("run --log-format json writes one JSON object per stderr line, with the failure's fields",
          "[integration][cli][logs]") {
  temp_dir dir;
  auto r = run_failing(dir, {"--log-format", "json"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status == 1);
  auto id = only_outcome(r);
  int warnings = 0;
  for (const auto& line : lines_of(r.err)) {
    auto j = json::parse(line);  // every line is a log record
    for (const char* key : {"ts", "level", "process", "msg"}) {
      CHECK(j.contains(key));
    }
    CHECK(j["process"] == "trellis-run");
    if (j["level"] == "warn") {
      ++warnings;
      CHECK(j["workflow"] == id);
      CHECK(j["node"] == 0);
      CHECK(j["task"] == "fail");
      CHECK(j["error_type"] == "std::runtime_error");
      CHECK(j["attempt"].is_number_integer());
      CHECK_THAT(j["msg"].get<std::string>(), Catch::Contains("card \"declined\"\nsecond line"));
    }
  }
  CHECK(warnings == 3);
}

TEST_CASE("run --log-level error leaves the warnings out; TRELLIS_LOG_LEVEL does the same",
          "[integration][cli][logs]") {
  temp_dir dir;
  auto r = run_failing(dir, {"--log-level", "error"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status == 1);
  only_outcome(r);
  CHECK(r.err.find("WARN") == std::string::npos);
  CHECK(r.err.find("failed") == std::string::npos);

  temp_dir env_dir;
  auto file = write_file(env_dir, "fail.json", R"({"task": "fail", "args": ["boom"]})");
  trellis::test::child_process p{{TRELLIS_DEMO_BIN, "run", file, "--db", env_dir.file("store.db")},
                                 env_dir.file("out"),
                                 env_dir.file("err"),
                                 {"TRELLIS_LOG_LEVEL=error"}};
  auto status = p.wait_for(trellis::test::max_test_wait);
  REQUIRE(status);
  CHECK(*status == 1);
  CHECK(p.stderr_text().find("WARN") == std::string::npos);

  auto bad = run_failing(dir, {"--log-level", "loud"});
  CHECK(bad.status == 2);
  CHECK_THAT(bad.err, Catch::Contains("error: invalid_config: --log-level: 'loud' is not a log level"));
}

TEST_CASE("Cluster processes start with JSON logs at debug level and never log the NATS password or token",
          "[integration][nats][security][logs]") {
  const std::string password = "log-test-horse-battery";
  nats_server_options server;
  server.config_text = "authorization {\n  users: [ { user: alice, password: \"" + password + "\" } ]\n}\n";
  cluster_processes c{"logjson",
                      {},
                      {"--log-level", "debug", "--log-format", "json"},
                      std::move(server),
                      {"TRELLIS_NATS_USER=alice", "TRELLIS_NATS_PASSWORD=" + password}};
  // " running" is still in the line that says so (wait_running looks for it).
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "1"}));
  trellis::test::check_chain_runs(c);
  auto logs = c.logs();
  INFO(logs);
  CHECK(logs.find(password) == std::string::npos);
  // The debug line names the connection, redacted.
  CHECK_THAT(logs, Catch::Contains("password=***"));
  int records = 0;
  for (const auto& line : lines_of(logs)) {
    if (line.rfind("{", 0) == 0) {
      auto j = json::parse(line);
      CHECK(j.contains("ts"));
      ++records;
    } else {
      CHECK_THAT(line, Catch::EndsWith(" stderr:"));  // the names logs() puts between the processes
    }
  }
  CHECK(records >= 4);
}

TEST_CASE("A worker with a NATS token logs no token at debug level", "[integration][nats][security][logs]") {
  const std::string token = "log-test-token-s3cr3t";
  nats_server_options server;
  server.config_text = "authorization { token: \"" + token + "\" }\n";
  cluster_processes c{"logtoken", {}, {"--log-level", "debug"}, std::move(server), {"TRELLIS_NATS_TOKEN=" + token}};
  c.start_dispatcher(c.db());
  c.start_worker({"--concurrency", "1"});
  trellis::test::check_chain_runs(c);
  auto logs = c.logs();
  INFO(logs);
  CHECK(logs.find(token) == std::string::npos);
  CHECK_THAT(logs, Catch::Contains(" DEBUG trellis-worker: ") && Catch::Contains("token=***"));
}
