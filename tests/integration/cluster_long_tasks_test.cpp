// Long tasks and fast recovery in cluster mode: a worker keeps what it holds
// alive (JetStream in-progress marks), so a handler of any length, and the
// tasks fetched behind it, are delivered once while their worker lives; a
// killed worker's tasks come back after the AckWait (5 s by default).

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::count_rows;

json outcome_of(const std::string& line) { return trellis::test::parse_outcome_line(line); }

/// The task stream of namespace `ns`.
std::string task_stream(const std::string& ns) { return trellis::detail::subject_space::make(ns)->task_stream(); }

}  // namespace

TEST_CASE(
    "A handler that runs three times the AckWait, and the tasks fetched behind it, are each delivered once while "
    "their worker lives",
    "[integration][nats]") {
  constexpr int ack_wait_ms = 1000;
  cluster_processes c{"longtask", {}, {"--ack-wait-ms", std::to_string(ack_wait_ms)}};
  auto db = c.db();
  c.start_dispatcher(db);

  // One handler thread: the first task runs 3x AckWait while the two
  // fetched with it wait behind it, 3x and 4x AckWait in all.
  json group = json::array({{{"task", "sleep_ms"}, {"args", {3 * ack_wait_ms}}},
                            {{"task", "sleep_ms"}, {"args", {ack_wait_ms}}},
                            {{"task", "sleep_ms"}, {"args", {ack_wait_ms}}}});
  auto file = trellis::test::write_file(c.dir(), "slow.json", json{{"group", group}}.dump());
  auto& client = c.start_client(file, {"--wait"});

  // The worker starts once all three tasks wait in the stream, so that its
  // first fetch takes them together.
  auto stream = task_stream(c.ns());
  REQUIRE(trellis::test::wait_until(
      [&] {
        auto s = c.server().stream_report(stream);
        return !s.is_null() && s.value("state", json::object()).value("messages", 0) == 3;
      },
      trellis::test::max_test_wait, "the three tasks to wait in the task stream"));
  // `--task-pack 1`: the first pull request expects single tasks, so it
  // asks for all eight and brings the three.
  auto& worker = c.start_worker({"--concurrency", "1", "--fetch-batch", "8", "--task-pack", "1"});

  auto status = client.wait_for(trellis::test::max_test_wait);
  INFO("client stdout:\n"
       << client.stdout_text() << "\nclient stderr:\n"
       << client.stderr_text() << "\n"
       << c.logs() << c.server().jetstream_summary());
  REQUIRE(status);
  CHECK(*status == 0);
  auto out = outcome_of(trellis::test::command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == json::array({3 * ack_wait_ms, ack_wait_ms, ack_wait_ms}));

  // Three messages, three deliveries: the consumer's sequence counts every
  // delivery, redeliveries included (its num_redelivered only counts those
  // still unacked, so it is back to 0 by now).
  // (The consumer of `sleep_ms` in every queue: a worker reads each task it
  // registers through its own consumer.)
  auto names = trellis::detail::subject_space::make(c.ns());
  REQUIRE(names);
  auto consumer = c.server().consumer_report(stream, names->all_queues_task_consumer("sleep_ms"));
  REQUIRE_FALSE(consumer.is_null());
  CHECK(consumer.value("delivered", json::object()).value("consumer_seq", -1) == 3);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3 AND attempt = 1") == 3);
  CHECK(count_rows(db, "SELECT count(*) FROM attempts") == 0);

  worker.kill(SIGTERM);
  auto stopped = worker.wait_for(trellis::test::max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);
}

TEST_CASE(
    "With the default AckWait, a chord of 300 short chains finishes within 10 s although one of its two workers "
    "is killed with SIGKILL mid-run",
    "[integration][nats]") {
  cluster_processes c{"fastrecover", {}};  // the default AckWait (5 s)
  auto db = c.db();
  c.start_dispatcher(db);
  auto& doomed = c.start_worker({"--concurrency", "2"});
  auto& survivor = c.start_worker({"--concurrency", "2"});
  c.wait_running(doomed);
  c.wait_running(survivor);

  constexpr int chains = 300;
  constexpr int step_ms = 10;
  json header = json::array();
  for (int i = 0; i < chains; ++i) {
    header.push_back({{"chain", json::array({{{"task", "sleep_ms"}, {"args", {step_ms}}}, {{"task", "identity"}}})}});
  }
  json chord = {{"chord", {{"header", header}, {"body", {{"task", "xsum"}}}}}};
  auto file = trellis::test::write_file(c.dir(), "chord.json", chord.dump());

  auto started = std::chrono::steady_clock::now();
  auto& client = c.start_client(file, {"--wait"});
  auto done_sql = "SELECT count(*) FROM nodes WHERE task = 'identity' AND state = 3";
  REQUIRE(trellis::test::wait_until([&] { return trellis::test::try_count(db, done_sql).value_or(0) >= 20; },
                                    trellis::test::max_test_wait, "the first chains to finish"));
  INFO(c.logs());
  REQUIRE(count_rows(db, done_sql) < chains);
  doomed.kill(SIGKILL);
  CHECK(doomed.wait() == 128 + SIGKILL);

  auto status = client.wait_for(trellis::test::max_test_wait);
  auto took = std::chrono::steady_clock::now() - started;
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text());
  REQUIRE(status);
  CHECK(*status == 0);
  auto out = outcome_of(trellis::test::command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == chains * step_ms);
  // AckWait (5 s) for the killed worker's tasks to come back, the run
  // itself (under a second of work per thread) and a margin.
  CHECK(took < std::chrono::seconds{10});
  auto id = out["id"].get<std::string>();
  CHECK(count_rows(db, "SELECT count(*) FROM nodes WHERE workflow_id = '" + id + "' AND state = 3") == 2 * chains + 1);
  CHECK(count_rows(db, "SELECT count(*) FROM dead_letters") == 0);
}
