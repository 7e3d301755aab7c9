// Rate limits, enforced across every worker of a namespace: a group of 30
// tasks at "20/s" starts one task every 50 ms, so it takes at least 1.45 s
// whether it runs embedded (through `trellis-demo run`, and through the
// engine with a task default) or over NATS on two worker processes, each
// of which would run it in a fraction of that on its own. The demo task
// `stamp` records when each handler started, so the spacing is checked too.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/engine_run.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/timed_run.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/partition.hpp"

#include <trellis/trellis.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using std::chrono::steady_clock;
using trellis::test::run_workflow;
using trellis::test::temp_dir;
using trellis::test::write_file;

constexpr std::int64_t interval_us = 50'000;  // "20/s"

/// A group of `n` tasks `task` (with `args`), each with rate_limit "20/s".
json limited_group(int n, const std::string& task, const json& args = json::array()) {
  json members = json::array();
  for (int i = 0; i < n; ++i) {
    members.push_back({{"task", task}, {"args", args}, {"options", {{"rate_limit", "20/s"}}}});
  }
  return {{"group", members}};
}

/// The start times a `stamp` file holds, in microseconds, sorted.
std::vector<std::int64_t> stamps_in(const std::string& path) {
  auto text = trellis::test::read_file(path);
  REQUIRE(text);
  std::vector<std::int64_t> out;
  std::istringstream lines{*text};
  for (std::string line; std::getline(lines, line);) {
    out.push_back(std::stoll(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Starts one interval apart at least: the j-th start is at least j
/// intervals after the slot of the first, which the first start itself may
/// have been a little late for (one interval of slack), however the tasks
/// were spread over threads and processes.
void check_spaced(const std::vector<std::int64_t>& starts) {
  REQUIRE_FALSE(starts.empty());
  for (std::size_t j = 1; j < starts.size(); ++j) {
    INFO("start " << j << " is " << (starts[j] - starts[0]) << " us after the first");
    CHECK(starts[j] - starts[0] >= static_cast<std::int64_t>(j - 1) * interval_us);
  }
}

}  // namespace

TEST_CASE("embedded, a group of 30 noop with rate_limit 20/s takes at least 1.4 s, on any number of threads",
          "[integration][cli][rate_limits]") {
  temp_dir dir;
  auto run = run_workflow(dir, "noop", limited_group(30, "noop"), {"--concurrency", "4"});
  CHECK(run.result.status == 0);
  CHECK(run.outcome["state"] == "SUCCESS");
  CHECK(run.outcome["result"].size() == 30);
  CHECK(run.took >= std::chrono::milliseconds{1400});
}

TEST_CASE("embedded, the starts of a rate-limited task are spaced evenly, one every 50 ms at 20/s",
          "[integration][cli][rate_limits]") {
  temp_dir dir;
  auto stamps = dir.file("stamps");
  auto run = run_workflow(dir, "stamp", limited_group(30, "stamp", json::array({stamps})), {"--concurrency", "4"});
  CHECK(run.outcome["state"] == "SUCCESS");
  auto starts = stamps_in(stamps);
  REQUIRE(starts.size() == 30);
  CHECK(starts.back() - starts.front() >= 28 * interval_us);
  check_spaced(starts);
}

TEST_CASE("a task's default rate limit holds when the call sets none, and a call's own overrides it",
          "[integration][rate_limits]") {
  trellis::task_registry tasks;
  std::mutex mutex;
  std::vector<std::int64_t> starts;
  auto tick = tasks.add("tick", [&](trellis::task_context&) {
    auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::lock_guard<std::mutex> guard{mutex};
    starts.push_back(now);
  });
  tick.rate_limit("20/s");
  trellis::engine_config cfg;
  cfg.store_path = ":memory:";
  cfg.concurrency = 4;
  trellis::engine eng{cfg, tasks};

  std::vector<trellis::canvas> members;
  for (int i = 0; i < 10; ++i) {
    members.emplace_back(tick.with());
  }
  auto started = steady_clock::now();
  trellis::test::run(eng, trellis::group(members));
  CHECK(steady_clock::now() - started >= std::chrono::milliseconds{450});
  {
    std::lock_guard<std::mutex> guard{mutex};
    std::sort(starts.begin(), starts.end());
    REQUIRE(starts.size() == 10);
    check_spaced(starts);
    starts.clear();
  }

  // "1000/s" on the call: ten starts 1 ms apart, far quicker than the default.
  members.clear();
  for (int i = 0; i < 10; ++i) {
    members.emplace_back(tick.with().rate_limit("1000/s"));
  }
  started = steady_clock::now();
  trellis::test::run(eng, trellis::group(members));
  CHECK(steady_clock::now() - started < std::chrono::milliseconds{450});
}

TEST_CASE("over NATS, two workers share one rate limit: 30 noop at 20/s take at least 1.4 s, spaced evenly",
          "[integration][nats][rate_limits]") {
  trellis::test::cluster_processes c{"ratelimit", {}};
  auto db = c.db();
  c.start_dispatcher(db);
  // One task per fetch, two threads each: the tasks spread over both
  // workers, each of which would run the group in 0.7 s with a limit of
  // its own.
  auto& first = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  auto& second = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  c.wait_running(first);
  c.wait_running(second);

  auto submit = [&](const std::string& name, const json& workflow) {
    auto file = write_file(c.dir(), name + ".json", workflow.dump());
    auto started = steady_clock::now();
    auto& client = c.start_client(file, {"--wait"});
    auto status = client.wait_for(trellis::test::max_test_wait);
    auto took = steady_clock::now() - started;
    INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text() << "\n"
                            << c.logs());
    REQUIRE(status);
    CHECK(*status == 0);
    auto out = trellis::test::parse_outcome_line(
        trellis::test::command_result{0, false, client.stdout_text(), ""}.last_line());
    CHECK(out["state"] == "SUCCESS");
    return took;
  };

  CHECK(submit("noop", limited_group(30, "noop")) >= std::chrono::milliseconds{1400});

  auto stamps = c.dir().file("stamps");
  CHECK(submit("stamp", limited_group(30, "stamp", json::array({stamps}))) >= std::chrono::milliseconds{1400});
  auto starts = stamps_in(stamps);
  REQUIRE(starts.size() == 30);
  CHECK(starts.back() - starts.front() >= 28 * interval_us);
  check_spaced(starts);
}

TEST_CASE("over NATS, workflows of two dispatcher partitions share one rate limit per task name",
          "[integration][nats][rate_limits]") {
  trellis::test::cluster_processes c{"ratepart", {"--partitions", "2"}};
  c.start_dispatcher(c.dir().file("a.db"), {"--owns", "0"});
  c.start_dispatcher(c.dir().file("b.db"), {"--owns", "1"});
  auto& first = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  auto& second = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  c.wait_running(first);
  c.wait_running(second);

  // Sixteen workflows at once, of two stamps each: their ids fall into both
  // partitions (all into one with probability 2^-15), so two dispatchers
  // publish tasks of one name at the same time.
  auto stamps = c.dir().file("stamps");
  auto file = write_file(c.dir(), "pair.json", limited_group(2, "stamp", json::array({stamps})).dump());
  std::vector<trellis::test::child_process*> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(&c.start_client(file, {"--wait"}));
  }
  int in_partition[2] = {0, 0};
  for (auto* client : clients) {
    auto status = client->wait_for(trellis::test::max_test_wait);
    INFO("client stdout:\n" << client->stdout_text() << "\nclient stderr:\n" << client->stderr_text() << "\n"
                            << c.logs());
    REQUIRE(status);
    CHECK(*status == 0);
    auto out = trellis::test::parse_outcome_line(
        trellis::test::command_result{0, false, client->stdout_text(), ""}.last_line());
    CHECK(out["state"] == "SUCCESS");
    ++in_partition[trellis::detail::partition_of(out["id"].get<std::string>(), 2)];
  }
  CHECK(in_partition[0] > 0);
  CHECK(in_partition[1] > 0);
  auto starts = stamps_in(stamps);
  REQUIRE(starts.size() == 32);
  CHECK(starts.back() - starts.front() >= 30 * interval_us);
  check_spaced(starts);
}

TEST_CASE("over NATS, rate-limited tasks ride out a server restart without ever starting faster than the rate",
          "[integration][nats][rate_limits][recovery]") {
  trellis::test::nats_server server;
  // AckWait as in the server-restart test: deliveries lost with the server
  // come back after it, and held ones are kept alive meanwhile.
  auto c = trellis::test::cluster_processes::on_broker(server.url(), "ratedown", {}, {"--ack-wait-ms", "8000"});
  auto db = c.db();
  c.start_dispatcher(db);
  auto& first = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  auto& second = c.start_worker({"--concurrency", "2", "--fetch-batch", "1"});
  c.wait_running(first);
  c.wait_running(second);

  // "4/s": one start every 250 ms, twelve in all; the server goes away
  // after the third and comes back on the same port and store.
  constexpr std::int64_t quarter_second_us = 250'000;
  auto stamps = c.dir().file("stamps");
  json group = json::array();
  for (int i = 0; i < 12; ++i) {
    group.push_back({{"task", "stamp"}, {"args", {stamps}}, {"options", {{"rate_limit", "4/s"}}}});
  }
  auto file = write_file(c.dir(), "slow.json", json{{"group", group}}.dump());
  c.start_client(file, {});
  REQUIRE(trellis::test::wait_until([&] { return trellis::test::line_count(stamps) >= 3; },
                                    trellis::test::max_test_wait, "three tasks to start"));
  server.stop();
  server.start();
  bool finished = trellis::test::wait_until(
      [&] { return trellis::test::try_count(db, "SELECT count(*) FROM workflows WHERE state = 3").value_or(0) == 1; },
      trellis::test::max_test_wait, "the workflow to succeed");
  INFO(c.logs() << "\nserver log:\n" << server.log());
  REQUIRE(finished);
  auto starts = stamps_in(stamps);
  // A task may run twice only if its delivery was lost with the server
  // (at least once); every start, a second one included, took a slot.
  REQUIRE(starts.size() >= 12);
  for (std::size_t j = 1; j < starts.size(); ++j) {
    INFO("start " << j << " is " << (starts[j] - starts[0]) << " us after the first");
    CHECK(starts[j] - starts[0] >= static_cast<std::int64_t>(j - 1) * quarter_second_us);
  }
  CHECK(c.stop_all());
}
