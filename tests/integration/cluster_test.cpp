// Cluster mode across processes: a real nats-server, one `trellis-demo
// dispatcher`, `trellis-demo worker` processes and the generic `trellis
// submit` client. The same actors as embedded mode, on the NATS transport.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include <trellis/clock.hpp>
#include <trellis/timestamp.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::count_rows;

/// A worker's flags: two handler threads taking four tasks a pull.
const std::vector<std::string> worker_flags{"--concurrency", "2", "--fetch-batch", "4"};

/// The outcome line of `run`: exactly id, state, result and error.
json outcome_of(const std::string& line) { return trellis::test::parse_outcome_line(line); }

}  // namespace

TEST_CASE(
    "A chord of 100 adds and a chain submitted over NATS run on two worker processes and print run's "
    "outcome line",
    "[integration][nats]") {
  cluster_processes c{"clusterrun", {}, {"--ack-wait-ms", "30000"}};
  auto db = c.db();
  auto& dispatcher = c.start_dispatcher(db);
  auto& first_worker = c.start_worker(worker_flags);
  auto& second_worker = c.start_worker(worker_flags);

  json header = json::array();
  std::int64_t expected = 0;
  for (int i = 0; i < 100; ++i) {
    header.push_back({{"task", "add"}, {"args", {i, i}}});
    expected += 2 * i;
  }
  json chord = {{"chord", {{"header", header}, {"body", {{"task", "xsum"}}}}}};
  auto chord_file = trellis::test::write_file(c.dir(), "chord.json", chord.dump());
  auto r = c.submit(chord_file, {"--wait"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << c.logs());
  CHECK(r.status == 0);
  auto out = outcome_of(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == expected);
  CHECK(out["error"].is_null());

  json chain = {
      {"chain",
       {{{"task", "add"}, {"args", {2, 2}}}, {{"task", "add"}, {"args", {3}}}, {{"task", "add"}, {"args", {10}}}}}};
  auto chain_file = trellis::test::write_file(c.dir(), "chain.json", chain.dump());
  r = c.submit(chain_file, {"--wait"});
  CHECK(r.status == 0);
  out = outcome_of(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 17);

  // A failing workflow: exit 1, FAILURE with the task's error.
  auto fail_file = trellis::test::write_file(
      c.dir(), "fail.json", R"({"task": "fail", "args": ["boom"], "options": {"retry": {"max_retries": 0}}})");
  r = c.submit(fail_file, {"--wait"});
  CHECK(r.status == 1);
  out = outcome_of(r.last_line());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["message"] == "boom");

  // Without --wait the client prints the id once the dispatcher committed it.
  // Broker and namespace come from the environment here (no flags).
  auto env_run = trellis::test::run_command({"/usr/bin/env", "TRELLIS_BROKER=" + c.url(), "TRELLIS_NAMESPACE=" + c.ns(),
                                             TRELLIS_CLI_BIN, "submit", chain_file},
                                            c.dir().file("submit-env"), trellis::test::max_test_wait);
  INFO("stdout:\n" << env_run.out << "\nstderr:\n" << env_run.err);
  REQUIRE(env_run.status == 0);
  auto id_line = json::parse(env_run.last_line());
  REQUIRE(id_line.size() == 1);
  auto id = id_line["id"].get<std::string>();
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + id + "'") == 1);

  // Flags win over the environment: a wrong broker and namespace there change nothing.
  auto flag_run = trellis::test::run_command(
      {"/usr/bin/env", "TRELLIS_BROKER=nats://127.0.0.1:1", "TRELLIS_NAMESPACE=elsewhere", TRELLIS_CLI_BIN, "submit",
       chain_file, "--broker", c.url(), "--namespace", c.ns(), "--wait"},
      c.dir().file("submit-flags"), trellis::test::max_test_wait);
  INFO("stdout:\n" << flag_run.out << "\nstderr:\n" << flag_run.err);
  CHECK(flag_run.status == 0);
  CHECK(outcome_of(flag_run.last_line())["result"] == 17);

  // A file that is not a workflow is refused before anything is sent.
  auto bad_file = trellis::test::write_file(c.dir(), "bad.json", R"({"chain": 5})");
  r = c.submit(bad_file, {"--wait"});
  CHECK(r.status == 2);

  // SIGTERM drains and stops every process with 143, as `run` does.
  for (auto* worker : {&first_worker, &second_worker}) {
    worker->kill(SIGTERM);
    auto worker_status = worker->wait_for(trellis::test::max_test_wait);
    REQUIRE(worker_status);
    CHECK(*worker_status == 143);
  }
  dispatcher.kill(SIGTERM);
  auto status = dispatcher.wait_for(trellis::test::max_test_wait);
  REQUIRE(status);
  CHECK(*status == 143);
}

TEST_CASE(
    "A worker killed with SIGKILL mid-run loses no task: another worker gets its tasks after AckWait and each "
    "node is recorded once",
    "[integration][nats]") {
  cluster_processes c{"clusterkill", {}, {"--ack-wait-ms", "1000"}};
  auto db = c.db();
  auto& dispatcher = c.start_dispatcher(db);
  auto& doomed = c.start_worker(worker_flags);

  constexpr int tasks = 12;
  json group = json::array();
  for (int i = 0; i < tasks; ++i) {
    group.push_back({{"task", "sleep_ms"}, {"args", {150}}});
  }
  auto file = trellis::test::write_file(c.dir(), "group.json", json{{"group", group}}.dump());
  auto& client = c.start_client(file, {"--wait"});

  auto done_sql = "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3";
  // Mid-run: the only worker has finished some tasks and holds others.
  REQUIRE(trellis::test::wait_until([&] { return trellis::test::try_count(db, done_sql).value_or(0) >= 2; },
                                    trellis::test::max_test_wait, "the first sleep_ms tasks to succeed"));
  auto done_before_kill = count_rows(db, done_sql);
  INFO(c.logs());
  REQUIRE(done_before_kill < tasks);
  doomed.kill(SIGKILL);
  CHECK(doomed.wait() == 128 + SIGKILL);

  c.start_worker(worker_flags);
  auto status = client.wait_for(trellis::test::max_test_wait);
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text());
  REQUIRE(status);
  CHECK(*status == 0);
  auto out = outcome_of(command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == json(std::vector<int>(tasks, 150)));
  auto id = out["id"].get<std::string>();

  dispatcher.kill(SIGTERM);
  auto stopped = dispatcher.wait_for(trellis::test::max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);

  // One row per node, every one a success of attempt 1: the redelivered
  // tasks ran again under the same attempt, and whichever outcome came
  // second changed nothing.
  auto where = " WHERE workflow_id = '" + id + "'";
  CHECK(count_rows(db, "SELECT count(*) FROM nodes" + where) == tasks);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes" + where + " AND state = 3 AND attempt = 1") == tasks);
  CHECK(count_rows(db, "SELECT count(DISTINCT node) FROM nodes" + where) == tasks);
  CHECK(count_rows(db, "SELECT count(*) FROM attempts" + where) == 0);
  CHECK(count_rows(db, "SELECT count(*) FROM dead_letters") == 0);
}

TEST_CASE(
    "Over NATS, keyword arguments bind by name on a worker process, an unknown one fails the step naming it, retry "
    "filters choose what is retried, and an eta holds a step back",
    "[integration][nats][kwargs][retry-filters][eta]") {
  cluster_processes c{"clusterkwargs", {}, {"--ack-wait-ms", "30000"}};
  auto db = c.db();
  c.start_dispatcher(db);
  c.start_worker(worker_flags);

  // add(2, 2), then add(x=<4>, y=10), then mul(x=<14>, y=3) with y by keyword.
  auto chain_file = trellis::test::write_file(c.dir(), "kwargs.json", R"({"chain": [
      {"task": "add", "args": [2, 2]},
      {"task": "add", "kwargs": {"y": 10}},
      {"task": "mul", "args": [], "kwargs": {"y": 3}}]})");
  auto r = c.submit(chain_file, {"--wait"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << c.logs());
  CHECK(r.status == 0);
  auto out = outcome_of(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 42);

  auto unknown_file =
      trellis::test::write_file(c.dir(), "unknown.json", R"({"task": "add", "args": [1, 2], "kwargs": {"z": 99}})");
  r = c.submit(unknown_file, {"--wait"});
  CHECK(r.status == 1);
  out = outcome_of(r.last_line());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "bad_arguments");
  CHECK(out["error"]["message"] == "add: unknown keyword argument 'z' (its parameters are x, y)");

  // A listed error type is retried on the worker until flaky succeeds; the
  // eta, 1.5 s ahead, holds the first attempt back in the dispatcher's store.
  auto eta_ms = trellis::detail::now_epoch_ms() + 1500;
  auto retried_file = trellis::test::write_file(
      c.dir(), "retried.json",
      R"({"task": "flaky", "args": [1], "kwargs": {"error_type": "connection_error"}, "options": {"eta": ")" +
          trellis::format_rfc3339_ms(eta_ms) +
          R"(", "retry": {"max_retries": 2, "countdown_ms": 10, "retry_on": ["connection_error"]}}})");
  r = c.submit(retried_file, {"--wait"});
  CHECK(trellis::detail::now_epoch_ms() >= eta_ms);
  CHECK(r.status == 0);
  out = outcome_of(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 2);

  // Any other type fails the step on its first attempt, keeping its type.
  auto filtered_file = trellis::test::write_file(c.dir(), "filtered.json", R"({"task": "flaky", "args": [1],
      "kwargs": {"error_type": "fatal"},
      "options": {"retry": {"max_retries": 2, "countdown_ms": 10, "retry_on": ["connection_error"]}}})");
  r = c.submit(filtered_file, {"--wait"});
  CHECK(r.status == 1);
  out = outcome_of(r.last_line());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "fatal");
  auto id = out["id"].get<std::string>();
  CHECK(count_rows(db, "SELECT count(*) FROM attempts WHERE workflow_id = '" + id + "'") == 1);
}

TEST_CASE(
    "A workflow that sets a priority is refused by trellis submit with exit 2 before anything is sent, naming the "
    "step, since NATS queues deliver in publish order",
    "[integration][nats]") {
  cluster_processes c{"priorityrefused", {}};
  json flow = {{"chain", json::array({{{"task", "add"}, {"args", {1, 2}}},
                                      {{"task", "add"}, {"args", {3}}, {"options", {{"priority", 7}}}}})}};
  auto file = trellis::test::write_file(c.dir(), "urgent.json", flow.dump());
  auto r = c.submit(file, {"--wait"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("step 'add' sets priority 7, which cluster mode does not honour"));
  CHECK(r.out.empty());
  // Priority 0 is every step's default, and passes.
  flow["chain"][1]["options"]["priority"] = 0;
  c.start_dispatcher(c.db());
  c.start_worker(worker_flags);
  auto plain = trellis::test::write_file(c.dir(), "plain.json", flow.dump());
  r = c.submit(plain, {"--wait"});
  CHECK(r.status == 0);
  CHECK(outcome_of(r.last_line())["result"] == 6);
}
