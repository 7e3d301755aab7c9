// map, starmap and chunks (Trellis issue 14): the case files
// tests/integration/canvas_parity/fanout_*.json, which canvas_parity_test.cpp
// runs embedded through `trellis-demo run`, here over a real nats-server
// through `trellis submit --wait` (a thread-pool worker and a process-pool
// one); and the C++ builders through the embedded engine and the cluster
// client.

#include "support/cluster_processes.hpp"
#include "support/engine_run.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/client.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
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

/// The parity cases of this issue, sorted.
std::vector<std::filesystem::path> fanout_cases() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator{TRELLIS_PARITY_DIR}) {
    auto name = entry.path().filename().string();
    if (entry.is_regular_file() && name.rfind("fanout_", 0) == 0 && entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Submits every case on `c` and checks it ends as its file says.
void run_cases_on(cluster_processes& c) {
  auto cases = fanout_cases();
  REQUIRE(cases.size() >= 10);
  for (const auto& path : cases) {
    INFO(path.filename().string());
    std::ifstream in{path};
    auto spec = json::parse(in);
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

TEST_CASE("a chunk runs in a process-pool child as on a thread", "[integration][nats][fanout]") {
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
}

TEST_CASE("the C++ builders map, starmap and chunks run on the embedded engine", "[integration][engine][fanout]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  using trellis::test::run;
  CHECK(to_json(run(eng, trellis::chain(trellis::map("mul", {1, 2, 3}, {10}), trellis::signature("xsum")))) == "60");
  CHECK(to_json(run(eng, trellis::starmap("add", pairs(4)))) == "[0,2,4,6]");
  CHECK(to_json(run(eng, trellis::chunks("add", pairs(5), 2))) == "[[0,2],[4,6],[8]]");
  CHECK(to_json(run(eng, trellis::group(trellis::map("identity", {}), trellis::chunks("add", {}, 3)))) == "[[],[]]");
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
}
