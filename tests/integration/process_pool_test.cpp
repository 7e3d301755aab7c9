// The process pool (`trellis-demo worker --pool process`, Celery's prefork)
// on a real nats-server with a real dispatcher: handlers run in children of
// the worker, so a handler that crashes (SIGSEGV, abort) or passes its hard
// time limit costs only its child. The step fails with `worker_lost` or
// `time_limit_exceeded` and follows its retry policy; the worker process
// itself (same PID) goes on serving.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/inspect_lines.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using std::chrono::steady_clock;
using trellis::test::child_process;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::count_rows;

/// Submits `flow` with `--wait` and returns its outcome line; `took` gets
/// the wall time from the submission to the outcome.
json run_flow(cluster_processes& c, const std::string& name, const json& flow,
              steady_clock::duration* took = nullptr) {
  auto file = trellis::test::write_file(c.dir(), name + ".json", flow.dump());
  auto started = steady_clock::now();
  auto& client = c.start_client(file, {"--wait"});
  auto status = client.wait_for(trellis::test::max_test_wait);
  if (took != nullptr) {
    *took = steady_clock::now() - started;
  }
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text() << "\n" << c.logs());
  REQUIRE(status);
  return trellis::test::parse_outcome_line(command_result{0, false, client.stdout_text(), ""}.last_line());
}

/// The value of the sample of `family` whose labels include `label`, from
/// `trellis metrics` ("" when there is none).
std::string metric_value(cluster_processes& c, const std::string& family, const std::string& label) {
  auto text = c.client({"metrics"}).out;
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(family + "{", 0) == 0 && line.find(label) != std::string::npos) {
      return line.substr(line.rfind(' ') + 1);
    }
  }
  INFO(text);
  return "";
}

/// Whether a worker of the cluster says (`inspect`) it is running `task`
/// now: its `active` list, not the tasks it registers.
bool running(cluster_processes& c, const std::string& task) {
  for (const auto& worker : trellis::test::of_role(trellis::test::inspect(c), "worker")) {
    for (const auto& active : worker.value("active", json::array())) {
      if (active.value("task", "") == task) {
        return true;
      }
    }
  }
  return false;
}

json chain_of_adds() {
  return {{"chain", json::array({{{"task", "add"}, {"args", {1, 2}}}, {{"task", "add"}, {"args", {10}}}})}};
}

/// A worker with the process pool, running.
child_process& start_pool_worker(cluster_processes& c, const std::string& concurrency) {
  auto& worker = c.start_worker({"--pool", "process", "--concurrency", concurrency});
  c.wait_running(worker);
  return worker;
}

}  // namespace

TEST_CASE("with --pool process, a chain runs in the worker's children and gives the right result",
          "[integration][nats][process_pool]") {
  cluster_processes c{"pool_chain", {}};
  c.start_dispatcher(c.db());
  auto& worker = start_pool_worker(c, "2");
  auto out = run_flow(c, "chain", chain_of_adds());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 13);
  CHECK_FALSE(worker.try_wait());
  worker.kill(SIGTERM);
  auto stopped = worker.wait_for(trellis::test::max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);
}

TEST_CASE("a handler that crashes its child fails the step with worker_lost after its retry, and the worker "
          "process lives on and serves the next workflow",
          "[integration][nats][process_pool]") {
  auto how = GENERATE(as<std::string>{}, "segv", "abort");
  auto signal_name = how == "segv" ? "SIGSEGV" : "SIGABRT";
  cluster_processes c{"pool_crash_" + how, {}};
  auto db = c.db();
  c.start_dispatcher(db);
  auto& worker = start_pool_worker(c, "2");
  const auto pid = worker.pid();

  json crash = {{"task", "crash"},
                {"args", {how}},
                {"options", {{"retry", {{"max_retries", 1}, {"countdown_ms", 0}, {"jitter", false}}}}}};
  auto out = run_flow(c, "crash", crash);
  INFO(out.dump() << "\n" << c.logs());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "worker_lost");
  auto message = out["error"]["message"].get<std::string>();
  CHECK(message.find(signal_name) != std::string::npos);
  CHECK(message.find("while running crash") != std::string::npos);

  auto id = out["id"].get<std::string>();
  CHECK(count_rows(db, "SELECT count(*) FROM attempts WHERE workflow_id = '" + id +
                           "' AND error_type = 'worker_lost'") >= 1);
  auto letter = trellis::test::only_dead_letter(db);
  CHECK(letter.workflow_id == id);
  CHECK(letter.task == "crash");
  CHECK(letter.attempts == 2);
  CHECK(letter.error.find("worker_lost") != std::string::npos);
  CHECK(letter.error.find(signal_name) != std::string::npos);

  // Two children replaced after crashes, counted.
  CHECK(metric_value(c, "trellis_worker_children_crashed_total", "task=\"crash\"") == "2");

  // The worker process is the same one, and it still serves.
  CHECK_FALSE(worker.try_wait());
  CHECK(worker.pid() == pid);
  auto next = run_flow(c, "after", chain_of_adds());
  CHECK(next["state"] == "SUCCESS");
  CHECK(next["result"] == 13);
  CHECK_FALSE(worker.try_wait());
}

TEST_CASE("a spin past its hard limit in a child fails with time_limit_exceeded within a second of the limit, "
          "and the only slot serves the next task",
          "[integration][nats][process_pool][time_limits]") {
  constexpr int limit_ms = 300;
  cluster_processes c{"pool_limit", {}};
  c.start_dispatcher(c.db());
  auto& worker = start_pool_worker(c, "1");  // one slot: the next task needs the replaced child

  steady_clock::duration took{};
  json spin = {{"task", "spin"}, {"args", {5000}}, {"options", {{"time_limit_ms", limit_ms}}}};
  auto out = run_flow(c, "spin", spin, &took);
  INFO(out.dump() << "\n" << c.logs());
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "time_limit_exceeded");
  // From the submission, which starts the step within milliseconds; the
  // spin itself would take 5 s.
  CHECK(took < std::chrono::milliseconds{limit_ms + 1000});

  CHECK(metric_value(c, "trellis_worker_children_killed_total", "task=\"spin\"") == "1");

  auto next = run_flow(c, "after", {{"task", "add"}, {"args", {20, 22}}});
  CHECK(next["state"] == "SUCCESS");
  CHECK(next["result"] == 42);
  CHECK_FALSE(worker.try_wait());
}

TEST_CASE("A worker given --pool of an unknown kind exits 2 with a message on stderr and nothing on stdout",
          "[integration][cli][process_pool]") {
  trellis::test::temp_dir dir;
  auto r = trellis::test::run_command(
      {TRELLIS_DEMO_BIN, "worker", "--broker", "nats://127.0.0.1:1", "--pool", "bogus"}, dir.file("bogus"),
      trellis::test::max_test_wait);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("--pool") != std::string::npos);
  CHECK(r.err.find("bogus") != std::string::npos);
  CHECK(r.err.find("thread or process") != std::string::npos);
}

namespace {

/// The pids whose parent is `parent` (from /proc/<pid>/stat).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc", ec}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream in{entry.path() / "stat"};
    std::string stat;
    std::getline(in, stat);
    // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream rest{stat.substr(close + 1)};
    std::string state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("when the zygote dies, the worker exits 5 and the task its child ran is delivered again, not lost",
          "[integration][nats][process_pool]") {
  cluster_processes c{"pool_zygote", {}};
  c.start_dispatcher(c.db());
  auto& worker = start_pool_worker(c, "1");
  auto zygotes = children_of(worker.pid());
  INFO(c.logs());
  REQUIRE(zygotes.size() == 1);  // the worker's only child: its handler children are the zygote's

  auto file = trellis::test::write_file(c.dir(), "sleep.json", json{{"task", "sleep_ms"}, {"args", {1500}}}.dump());
  auto& client = c.start_client(file, {"--wait"});
  REQUIRE(trellis::test::wait_until(
      [&] { return running(c, "sleep_ms"); }, trellis::test::max_test_wait, "the worker to run sleep_ms"));

  ::kill(zygotes[0], SIGKILL);
  auto exited = worker.wait_for(trellis::test::max_test_wait);
  REQUIRE(exited);
  CHECK(*exited == 5);
  CHECK(worker.stderr_text().find("zygote") != std::string::npos);
  CHECK(worker.stderr_text().find("process_pool_failed") != std::string::npos);

  // Handed back unacked: another worker runs it, as its first attempt.
  c.start_worker({"--concurrency", "1"});
  auto status = client.wait_for(trellis::test::max_test_wait);
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text());
  REQUIRE(status);
  auto out = trellis::test::parse_outcome_line(command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 1500);
  CHECK(count_rows(c.db(), "SELECT count(*) FROM attempts") == 0);
}

TEST_CASE("a revoke with terminate kills the child at once, and the only slot runs the next task",
          "[integration][nats][process_pool][revoke]") {
  cluster_processes c{"pool_revoke", {}};
  c.start_dispatcher(c.db());
  auto& worker = start_pool_worker(c, "1");
  // spin never looks at its stop token and has no hard limit: on threads,
  // terminate could not stop it.
  auto file = trellis::test::write_file(c.dir(), "spin.json", json{{"task", "spin"}, {"args", {60'000}}}.dump());
  auto submitted = c.submit(file);
  REQUIRE(submitted.status == 0);
  auto id = json::parse(submitted.last_line())["id"].get<std::string>();
  REQUIRE(trellis::test::wait_until(
      [&] { return running(c, "spin"); }, trellis::test::max_test_wait, "the worker to run spin"));

  auto revoked_at = steady_clock::now();
  auto revoke = c.client({"revoke", id, "--terminate"});
  INFO("revoke stdout:\n" << revoke.out << "\nrevoke stderr:\n" << revoke.err);
  REQUIRE(revoke.status == 0);
  CHECK(json::parse(revoke.last_line())["state"] == "REVOKED");
  auto next = run_flow(c, "after", {{"task", "add"}, {"args", {2, 3}}});
  CHECK(next["state"] == "SUCCESS");
  CHECK(next["result"] == 5);
  CHECK(steady_clock::now() - revoked_at < std::chrono::seconds{10});
  CHECK_FALSE(worker.try_wait());
}
