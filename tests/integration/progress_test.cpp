// Progress and custom states end to end (Celery's update_state): a handler
// reports how far it is and a state name of its own while it waits for a
// file the test creates; `engine::status`, `trellis status --db` and, in a
// cluster, `trellis status --broker` show them on its node while it runs
// and after it finished.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::value;
using trellis::test::max_test_wait;
using trellis::test::temp_dir;
using trellis::test::wait_until;

/// `trellis-demo status ID --db DB`, parsed; null when it printed nothing
/// (e.g. the store is not written yet).
json status_from_store(const temp_dir& dir, const std::string& id, const std::string& db) {
  auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "status", id, "--db", db}, dir.file("status"), max_test_wait);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  if (r.status != 0 || r.last_line().empty()) {
    return nullptr;
  }
  return json::parse(r.last_line());
}

/// The status line's row of `node`, or null.
json node_row(const json& doc, int node) {
  if (doc.is_null()) {
    return nullptr;
  }
  for (const auto& n : doc["nodes"]) {
    if (n["node"] == node) {
      return n;
    }
  }
  return nullptr;
}

/// Whether `row` shows the handler waiting: 3 of 4 done, WAITING.
bool shows_waiting(const json& row) {
  return !row.is_null() && row["state"] == "STARTED" && row["custom_state"] == "WAITING" &&
         row["progress"] == json{{"done", 3}, {"total", 4}, {"message", "step 3"}};
}

/// Whether `row` shows the finished handler's last report.
bool shows_finished(const json& row) {
  return !row.is_null() && row["state"] == "SUCCESS" && row["custom_state"] == "FINISHING" &&
         row["progress"] == json{{"done", 4}, {"total", 4}, {"message", "done"}};
}

void open_gate(const std::string& gate) { std::ofstream{gate} << "go\n"; }

}  // namespace

TEST_CASE("a running handler's progress and custom state show in engine::status and status --db, and stay",
          "[integration][engine][progress]") {
  temp_dir dir;
  auto db = dir.file("p.db");
  auto gate = dir.file("gate");
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  trellis::engine_config cfg;
  cfg.store_path = db;
  trellis::engine eng{cfg, tasks};
  // Nodes: 0 the chain, 1 report_and_wait, 2 add.
  auto handle = eng.submit(trellis::chain(trellis::signature("report_and_wait", {3, gate}),
                                          trellis::signature("add", {10})));
  REQUIRE(handle);

  // While it runs: the API and a reader process on the store say the same.
  REQUIRE(wait_until(
      [&] {
        auto doc = eng.status(handle->id());
        return doc && shows_waiting(node_row(json::parse(to_json(*doc)), 1));
      },
      max_test_wait, "engine::status to show the handler waiting"));
  auto running = status_from_store(dir, handle->id(), db);
  INFO(running.dump());
  CHECK(running["state"] == "STARTED");
  CHECK(shows_waiting(node_row(running, 1)));
  CHECK(node_row(running, 1)["attempt"] == 1);
  CHECK(node_row(running, 2).is_null());  // not started: no row

  open_gate(gate);
  auto result = handle->wait_for(max_test_wait);
  REQUIRE(result);
  CHECK(*result == value(14));

  // After it finished: the last report, kept in the store.
  auto doc = eng.status(handle->id());
  REQUIRE(doc);
  auto after = json::parse(to_json(*doc));
  INFO(after.dump());
  CHECK(after["state"] == "SUCCESS");
  CHECK(shows_finished(node_row(after, 1)));
  CHECK(node_row(after, 2)["progress"].is_null());  // add never reported
  CHECK(node_row(after, 2)["custom_state"].is_null());
  auto unknown = eng.status("nope");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code() == trellis::errc::not_found);
  eng.shutdown();
  CHECK(status_from_store(dir, handle->id(), db) == after);
}

TEST_CASE("a bad custom state name fails the attempt with usage_error, naming the rule",
          "[integration][engine][progress]") {
  temp_dir dir;
  trellis::task_registry tasks;
  tasks.add("bad_state", [](trellis::task_context& ctx) {
    ctx.set_state("uploading");
    return 1;
  });
  trellis::engine_config cfg;
  cfg.store_path = dir.file("bad.db");
  trellis::engine eng{cfg, tasks};
  auto handle = eng.submit(trellis::signature("bad_state"));
  REQUIRE(handle);
  auto result = handle->wait_for(max_test_wait);
  REQUIRE_FALSE(result);
  auto err = handle->error_details().as_map();
  CHECK(err.at("type") == value("trellis::usage_error"));
  CHECK_THAT(err.at("message").as_string(), Catch::Contains("may hold only A-Z, 0-9 and _"));
}

TEST_CASE("a retried task's status shows the running attempt's progress, not the failed one's",
          "[integration][engine][progress]") {
  temp_dir dir;
  auto gate = dir.file("gate");
  trellis::task_registry tasks;
  tasks.add("twice", [gate](trellis::task_context& ctx) -> std::int64_t {
    if (ctx.attempt() == 1) {
      ctx.set_state("FIRST_TRY");
      ctx.report_progress(1, 3, "before the failure");
      throw std::runtime_error("first attempt fails");
    }
    ctx.report_progress(2, 3, "second attempt");
    while (!std::ifstream{gate}) {
      ctx.sleep_for(std::chrono::milliseconds{10});
    }
    return ctx.attempt();
  }).retry(trellis::retry_policy::fixed(1, std::chrono::milliseconds{10}));
  trellis::engine_config cfg;
  cfg.store_path = dir.file("retry.db");
  trellis::engine eng{cfg, tasks};
  auto handle = eng.submit(trellis::signature("twice"));
  REQUIRE(handle);
  json row;
  REQUIRE(wait_until(
      [&] {
        auto doc = eng.status(handle->id());
        row = doc ? node_row(json::parse(to_json(*doc)), 0) : json{};
        return !row.is_null() && row["attempt"] == 2 && !row["progress"].is_null();
      },
      max_test_wait, "the second attempt's report"));
  INFO(row.dump());
  CHECK(row["state"] == "STARTED");
  CHECK(row["error"].is_null());
  CHECK(row["progress"] == json{{"done", 2}, {"total", 3}, {"message", "second attempt"}});
  CHECK(row["custom_state"].is_null());  // each attempt's picture is its own
  open_gate(gate);
  auto result = handle->wait_for(max_test_wait);
  REQUIRE(result);
  CHECK(*result == value(2));
}

TEST_CASE("a handler reporting in a tight loop makes at most one stored report per 100 ms, ending with its last",
          "[integration][engine][progress]") {
  temp_dir dir;
  trellis::task_registry tasks;
  tasks.add("busy", [](trellis::task_context& ctx, std::int64_t ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
    std::int64_t calls = 0;
    while (std::chrono::steady_clock::now() < until) {
      ctx.report_progress(++calls, std::nullopt, "working");
    }
    ctx.report_progress(calls, calls, "done");
    return calls;
  });
  trellis::engine_config cfg;
  cfg.store_path = dir.file("busy.db");
  trellis::engine eng{cfg, tasks};
  auto started = std::chrono::steady_clock::now();
  auto handle = eng.submit(trellis::signature("busy", {500}));
  REQUIRE(handle);
  auto result = handle->wait_for(max_test_wait);
  REQUIRE(result);
  auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  auto calls = result->as<std::int64_t>();
  auto doc = eng.status(handle->id());
  REQUIRE(doc);
  auto row = node_row(json::parse(to_json(*doc)), 0);
  CHECK(row["progress"] == json{{"done", calls}, {"total", calls}, {"message", "done"}});
  // What the dispatcher stored: one report per tick at most, plus the last.
  auto text = eng.metrics_text();
  auto at = text.find("trellis_progress_reports_total{queue=\"default\",task=\"busy\"} ");
  REQUIRE(at != std::string::npos);
  auto stored = std::stoll(text.substr(text.find('}', at) + 2));
  INFO(calls << " reports in " << elapsed_ms << " ms, " << stored << " stored");
  CHECK(stored >= 1);
  CHECK(stored <= elapsed_ms / 100 + 2);
  CHECK(stored < calls);
}

TEST_CASE("status over the broker shows a worker's progress and custom state while it runs and after",
          "[integration][nats][progress][process_pool]") {
  // Either pool: a handler in a process-pool child reports through its
  // socket to the worker, which sends it on as a thread's reports go.
  auto pool = GENERATE(as<std::string>{}, "thread", "process");
  trellis::test::cluster_processes c{"progress", {}, {}};
  c.start_dispatcher(c.db());
  c.start_worker({"--concurrency", "2", "--pool", pool});
  auto gate = c.dir().file("gate");
  auto file = trellis::test::write_file(c.dir(), "wait.json",
                                        R"({"task": "report_and_wait", "args": [3, ")" + gate + R"("]})");
  auto submitted = c.client({"submit", file});
  REQUIRE(submitted.status == 0);
  auto id = json::parse(submitted.last_line())["id"].get<std::string>();

  auto over_broker = [&] {
    auto r = c.client({"status", id});
    return r.status == 0 ? json::parse(r.last_line()) : json{};
  };
  // Node 0: the workflow is one task.
  REQUIRE(wait_until([&] { return shows_waiting(node_row(over_broker(), 0)); }, max_test_wait,
                     "status --broker to show the worker's handler waiting"));
  open_gate(gate);
  REQUIRE(wait_until([&] { return shows_finished(node_row(over_broker(), 0)); }, max_test_wait,
                     "status --broker to show the finished handler's last report"));
  auto from_store = c.cli({"status", id, "--db", c.db()});
  REQUIRE(from_store.status == 0);
  CHECK(json::parse(from_store.last_line()) == over_broker());
}
