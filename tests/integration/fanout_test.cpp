// map, starmap, chunks and a handler's replacement of itself (Trellis issue
// 14): the case files tests/integration/canvas_parity/fanout_*.json, which
// canvas_parity_test.cpp runs embedded through `trellis-demo run`, here over
// a real nats-server through `trellis submit --wait` (a thread-pool worker
// and a process-pool one); the C++ builders and `ctx.replace` through the
// embedded engine and the cluster client; and a replacement decided while
// the dispatcher is dead, applied once by the next one.

#include "support/parity_cases.hpp"
#include "support/cluster_processes.hpp"
#include "support/engine_run.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/client.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::value;
using trellis::test::cluster_processes;
using trellis::test::max_test_wait;

/// Submits every case on `c` and checks it ends as its file says.
void run_cases_on(cluster_processes& c) {
  auto cases = trellis::test::parity_cases("fanout_");
  REQUIRE(cases.size() >= 10);
  for (const auto& path : cases) {
    INFO(path.filename().string());
    auto spec = trellis::test::read_case(path);
    auto file = trellis::test::write_file(c.dir(), path.filename().string(), spec["workflow"].dump());
    auto r = c.submit(file, {"--wait"});
    auto out = trellis::test::parse_outcome_line(r.last_line());
    const auto& expect = spec["expect"];
    CHECK(out["state"] == expect["state"]);
    CHECK(r.status == (expect["state"] == "SUCCESS" ? 0 : 1));
    CHECK(out["result"] == expect.value("result", json{}));
    if (expect["state"] == "FAILURE") {
      CHECK(out["error"]["task"] == expect["error_task"]);
    }
  }
}

std::unique_ptr<trellis::client> connect(const cluster_processes& c) {
  trellis::client_options opts;
  opts.broker_urls = {c.url()};
  opts.ns = c.ns();
  auto made = trellis::client::connect(opts);
  INFO((made ? std::string{} : to_string(made.error())));
  REQUIRE(made);
  return std::move(*made);
}

trellis::task_registry demo_tasks() {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  return tasks;
}

value::array pairs(int n) {
  value::array out;
  for (int i = 0; i < n; ++i) {
    out.emplace_back(value::array{i, i});
  }
  return out;
}

}  // namespace

TEST_CASE("map, starmap and chunks case files end over NATS as they do embedded", "[integration][nats][fanout]") {
  cluster_processes c{"fanoutcases", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  run_cases_on(c);
}

TEST_CASE("a chunk and a replacement run in a process-pool child as on a thread", "[integration][nats][fanout]") {
  cluster_processes c{"fanoutpool", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--pool", "process", "--concurrency", "2"}));
  auto file = trellis::test::write_file(
      c.dir(), "chunks.json",
      R"({"chunks": {"task": "add", "items": [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]], "size": 2}})");
  auto r = c.submit(file, {"--wait"});
  auto out = trellis::test::parse_outcome_line(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == json::parse("[[0,2],[4,6],[8]]"));

  auto split = trellis::test::write_file(c.dir(), "split.json",
                                         R"({"chain": [{"task": "split", "args": [3]}, {"task": "xsum"}]})");
  r = c.submit(split, {"--wait"});
  out = trellis::test::parse_outcome_line(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 3);
}

TEST_CASE("the C++ builders map, starmap and chunks run on the embedded engine", "[integration][engine][fanout]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  using trellis::test::run;
  CHECK(to_json(run(eng, trellis::chain(trellis::map("mul", {1, 2, 3}, {10}), trellis::signature("xsum")))) == "60");
  CHECK(to_json(run(eng, trellis::starmap("add", pairs(4)))) == "[0,2,4,6]");
  CHECK(to_json(run(eng, trellis::chunks("add", pairs(5), 2))) == "[[0,2],[4,6],[8]]");
  CHECK(to_json(run(eng, trellis::group(trellis::map("identity", {}), trellis::chunks("add", {}, 3)))) == "[[],[]]");
  // Over the input: the requirement's example, and its starmap and chunks forms.
  CHECK(to_json(run(eng, trellis::chain(trellis::signature("identity", {value::array{1, 2, 3}}),
                                        trellis::map_input("mul", {10}), trellis::signature("xsum")))) == "60");
  CHECK(to_json(run(eng, trellis::chain(trellis::signature("identity", {pairs(3)}), trellis::starmap_input("add")))) ==
        "[0,2,4]");
  CHECK(to_json(run(eng, trellis::chain(trellis::signature("identity", {pairs(3)}),
                                        trellis::chunks_input("add", 2)))) == "[[0,2],[4]]");
}

TEST_CASE("a handler replaces itself through ctx.replace and task_result::replace on the embedded engine",
          "[integration][engine][fanout]") {
  auto tasks = demo_tasks();
  // Replaces itself with a chain that runs this task again with n - 1, down
  // to 0: a replacement that is replaced in turn, n levels deep.
  tasks.add("countdown", {"n"}, [](trellis::task_context&, std::int64_t n) -> trellis::task_result<std::int64_t> {
    if (n == 0) {
      return std::int64_t{100};
    }
    return trellis::task_result<std::int64_t>::replace(
        trellis::chain(trellis::signature("countdown", {n - 1}), trellis::signature("add", {n})));
  });
  tasks.add("bad_replace", [](trellis::task_context& ctx) -> trellis::task_result<value> {
    return ctx.replace(trellis::signature("nope"));
  });
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), std::move(tasks)};
  using trellis::test::run;
  CHECK(to_json(run(eng, trellis::chain(trellis::signature("split", {3}), trellis::signature("xsum")))) == "3");
  CHECK(to_json(run(eng, trellis::signature("countdown", {4}))) == "110");  // 100 + 1 + 2 + 3 + 4
  CHECK(to_json(run(eng, trellis::group(trellis::signature("split", {2}), trellis::map("identity", {7})))) ==
        "[[0,1],[7]]");
  // A replacement naming a task the engine does not have fails where it runs.
  auto h = eng.submit(trellis::signature("bad_replace"));
  REQUIRE(h);
  auto r = h->wait_for(max_test_wait);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == trellis::errc::workflow_failed);
}

TEST_CASE("the C++ builders map, starmap and chunks run through the cluster client", "[integration][nats][fanout]") {
  cluster_processes c{"fanoutclient", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  auto cl = connect(c);
  auto expect = [&](const trellis::canvas& flow, const std::string& result) {
    auto h = cl->submit(flow);
    REQUIRE(h);
    auto r = h->wait_for(max_test_wait);
    INFO((r ? std::string{} : to_string(r.error())) << "\n" << c.logs());
    REQUIRE(r);
    CHECK(to_json(*r) == result);
  };
  expect(trellis::chain(trellis::map("mul", {1, 2, 3}, {10}), trellis::signature("xsum")), "60");
  expect(trellis::starmap("add", pairs(3)), "[0,2,4]");
  expect(trellis::chunks("add", pairs(5), 2), "[[0,2],[4,6],[8]]");
  expect(trellis::chain(trellis::signature("split", {4}), trellis::signature("xsum")), "6");
  expect(trellis::chain(trellis::signature("split", {4}), trellis::map_input("mul", {3}), trellis::signature("xsum")),
         "18");
}

TEST_CASE("a run killed while a map over its input runs is finished by resume: the map expanded once",
          "[integration][recovery][fanout]") {
  // 40 calls of 50 ms on two handler threads take about a second, so the
  // kill lands after a few of them and long before the last.
  trellis::test::temp_dir dir;
  auto db = dir.file("store.db");
  json items = json::array();
  for (int i = 0; i < 40; ++i) {
    items.push_back(50);
  }
  json flow = {{"chain", json::array({json{{"task", "identity"}, {"args", json::array({items})}},
                                      json{{"map", {{"task", "sleep_ms"}}}}, json{{"task", "xsum"}}})}};
  auto file = trellis::test::write_file(dir, "map.json", flow.dump());
  trellis::test::child_process run{
      {TRELLIS_DEMO_BIN, "run", file, "--db", db, "--concurrency", "2"}, dir.file("run.out"), dir.file("run.err")};
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(db, "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3")
                   .value_or(0) >= 4;
      },
      max_test_wait, "at least 4 calls of the map recorded as SUCCESS"));
  run.kill(SIGKILL);
  REQUIRE(run.wait() == 128 + SIGKILL);
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM node_replacements") == 1);
  auto done_before = trellis::test::count_rows(db, "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3");
  REQUIRE(done_before < 40);

  auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, dir.file("resume"), max_test_wait);
  INFO("resume stdout:\n" << r.out << "\nresume stderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.status == 0);
  auto out = trellis::test::parse_outcome_line(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 2000);
  // Still one expansion; identity, xsum and the 40 calls, each once.
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM node_replacements") == 1);
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM nodes") == 42);
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM nodes WHERE state = 3 AND attempt = 1") == 42);
}

TEST_CASE(
    "a replacement decided while the dispatcher is dead is applied once by the next one: its steps exist "
    "exactly once",
    "[integration][nats][recovery][fanout]") {
  cluster_processes c{"fanoutcrash", {}, {"--ack-wait-ms", "2000"}};
  auto& first = c.start_dispatcher(c.db());
  c.wait_running(first);
  auto file = trellis::test::write_file(c.dir(), "split.json",
                                        R"({"chain": [{"task": "split", "args": [3]}, {"task": "xsum"}]})");
  // Without --wait: answered once the workflow is committed and split published.
  auto submitted = c.submit(file);
  REQUIRE(submitted.status == 0);
  auto id = json::parse(submitted.last_line())["id"].get<std::string>();
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);

  // The worker runs split and publishes its replacement, which nobody
  // commits: the decision is made, the commit is not.
  auto& worker = c.start_worker({"--concurrency", "2"});
  c.wait_running(worker);
  auto stream_messages = [&](const std::string& stream) {
    auto report = c.server().stream_report(stream);
    return report.is_null() ? std::int64_t{-1} : report["state"].value("messages", std::int64_t{-1});
  };
  REQUIRE(trellis::test::wait_until(
      [&] {
        return stream_messages("TRELLIS_FANOUTCRASH_TASKS") == 0 && stream_messages("TRELLIS_FANOUTCRASH_EVENTS") >= 1;
      },
      max_test_wait, "split run and its replacement waiting in the event stream"));
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM node_replacements") == 0);

  // The next dispatcher applies it once, commits it with the new steps and runs them.
  c.wait_running(c.start_dispatcher(c.db()));
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(c.db(), "SELECT count(*) FROM workflows WHERE state = 3").value_or(0) == 1;
      },
      max_test_wait, "the workflow to succeed"));
  auto store = trellis::test::open_store(c.db());
  auto wf = store->find_workflow(id);
  REQUIRE(wf);
  REQUIRE(*wf);
  CHECK(to_json((*wf)->result) == "3");
  auto replacements = store->replacements_of(id);
  REQUIRE(replacements);
  REQUIRE(replacements->size() == 1);
  CHECK((*replacements)[0].node == 1);
  // split, xsum and the three identities: one row each, each run once.
  auto nodes = store->nodes_of(id);
  REQUIRE(nodes);
  CHECK(nodes->size() == 5);
  for (const auto& n : *nodes) {
    CHECK(n.attempt == 1);
  }
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM nodes WHERE task = 'identity' AND state = 3") == 3);
  CHECK(c.stop_all());
}
