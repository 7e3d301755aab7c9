// Callbacks, link and link_error (Trellis issue 14): the case files
// tests/integration/canvas_parity/callback_*.json (canvas_parity_test.cpp
// checks their main outcome) run here embedded through `trellis-demo run`
// and over a real nats-server through `trellis submit --wait`, and their
// `expect_callbacks` are checked in `status` (state, error type) and in the
// store (what a callback returned, so what it was given). Then the C++ API,
// embedded and through the cluster client, and a callback pending when the
// process is killed, run once by `resume`.

#include "support/parity_cases.hpp"
#include "support/child_process.hpp"
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

/// Checks a case's outcome line, then its `expect_callbacks` against the
/// `status` document and the node rows of the store at `db`.
void check_case(const json& spec, const trellis::test::command_result& r, const json& status, const std::string& db) {
  auto out = trellis::test::parse_outcome_line(r.last_line());
  const auto& expect = spec["expect"];
  CHECK(out["state"] == expect["state"]);
  CHECK(r.status == (expect["state"] == "SUCCESS" ? 0 : 1));
  CHECK(out["result"] == expect.value("result", json{}));
  if (expect["state"] == "FAILURE") {
    CHECK(out["error"]["task"] == expect["error_task"]);
  }
  auto id = out["id"].get<std::string>();
  // Reported finished after its callbacks: by then every one has ended.
  CHECK(status["state"] == expect["state"]);
  auto rows = trellis::test::open_store(db)->nodes_of(id);
  REQUIRE(rows);
  for (const auto& want : spec["expect_callbacks"]) {
    INFO("callback " << want.dump());
    const json* node = nullptr;
    for (const auto& n : status["nodes"]) {
      if (n["task"] == want["task"]) {
        REQUIRE(node == nullptr);  // each case names each callback task once
        node = &n;
      }
    }
    REQUIRE(node != nullptr);
    CHECK((*node)["state"] == want["state"]);
    if (want.contains("error_type")) {
      CHECK((*node)["error"]["type"] == want["error_type"]);
    }
    auto row = std::find_if(rows->begin(), rows->end(),
                            [&](const trellis::detail::node_record& n) { return n.node == (*node)["node"]; });
    REQUIRE(row != rows->end());
    if (want.contains("result")) {
      CHECK(json::parse(to_json(row->result)) == want["result"]);
    }
    if (want.contains("result_error_task")) {
      // An identity link_error returns the error map it was given.
      auto err = json::parse(to_json(row->result));
      CHECK(err["task"] == want["result_error_task"]);
      CHECK(err["workflow"] == id);
      CHECK(err["type"].is_string());
      CHECK(err["message"].is_string());
      CHECK(err["node"].is_number_integer());
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

trellis::canvas sig(const char* task, value::array args = {}) { return trellis::signature(task, std::move(args)); }

/// The state of the one node of `status` running `task`.
std::string state_of(const value& status, const std::string& task) {
  std::string found;
  for (const auto& n : status.as_map().at("nodes").as_array()) {
    if (n.as_map().at("task") == value(task)) {
      REQUIRE(found.empty());
      found = n.as_map().at("state").as_string();
    }
  }
  return found;
}

}  // namespace

TEST_CASE("callback case files run embedded through trellis-demo run; status shows the callbacks",
          "[integration][callbacks]") {
  auto cases = trellis::test::parity_cases("callback_");
  REQUIRE(cases.size() >= 6);
  for (const auto& path : cases) {
    DYNAMIC_SECTION(path.filename().string()) {
      auto spec = trellis::test::read_case(path);
      trellis::test::temp_dir dir;
      auto db = dir.file("store.db");
      auto file = trellis::test::write_file(dir, "workflow.json", spec["workflow"].dump());
      auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "run", file, "--db", db}, dir.file("run"), max_test_wait);
      INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
      REQUIRE_FALSE(r.timed_out);
      auto id = trellis::test::parse_outcome_line(r.last_line())["id"].get<std::string>();
      auto st = trellis::test::run_command({TRELLIS_DEMO_BIN, "status", id, "--db", db}, dir.file("status"),
                                           max_test_wait);
      INFO("status:\n" << st.out << st.err);
      REQUIRE(st.status == 0);
      check_case(spec, r, json::parse(st.last_line()), db);
    }
  }
}

TEST_CASE("callback case files run over NATS through trellis submit --wait; status over the broker",
          "[integration][nats][callbacks]") {
  cluster_processes c{"callbacks", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  for (const auto& path : trellis::test::parity_cases("callback_")) {
    INFO(path.filename().string());
    auto spec = trellis::test::read_case(path);
    auto file = trellis::test::write_file(c.dir(), path.filename().string(), spec["workflow"].dump());
    auto r = c.submit(file, {"--wait"});
    INFO("submit:\n" << r.out << r.err << "\n" << c.logs());
    auto id = trellis::test::parse_outcome_line(r.last_line())["id"].get<std::string>();
    auto st = c.client({"status", id});
    INFO("status:\n" << st.out << st.err);
    REQUIRE(st.status == 0);
    check_case(spec, r, json::parse(st.last_line()), c.db());
  }
  CHECK(c.stop_all());
}

TEST_CASE("link and link_error through the C++ API on the embedded engine", "[integration][engine][callbacks]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  // Success: the link runs with the result, the link_error does not; the
  // workflow's result is the main canvas's.
  auto ok = eng.submit(trellis::chain(sig("add", {1, 2}), sig("mul", {10})).link(sig("identity")).link_error(sig("noop")));
  REQUIRE(ok);
  auto r = ok->wait_for(max_test_wait);
  REQUIRE(r);
  CHECK(to_json(*r) == "30");
  auto status = eng.status(ok->id());
  REQUIRE(status);
  CHECK(state_of(*status, "identity") == "SUCCESS");
  CHECK(state_of(*status, "noop") == "REVOKED");
  // Failure: the link_error runs, the workflow fails as its main canvas.
  auto bad = eng.submit(sig("fail", {"boom"}).link(sig("noop")).link_error(sig("identity")));
  REQUIRE(bad);
  auto f = bad->wait_for(max_test_wait);
  REQUIRE_FALSE(f);
  CHECK(f.error().code() == trellis::errc::workflow_failed);
  status = eng.status(bad->id());
  REQUIRE(status);
  CHECK(state_of(*status, "identity") == "SUCCESS");
  CHECK(state_of(*status, "noop") == "REVOKED");
}

TEST_CASE("a replayed dead letter that now succeeds runs its links and keeps the link_error that ran before",
          "[integration][engine][callbacks][dlq]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  // flaky(1) fails its first attempt (no retries: a dead letter) and
  // succeeds the next, which the replay runs.
  auto h = eng.submit(
      sig("flaky", {1}).link(trellis::canvas{trellis::signature("noop").immutable()}).link_error(sig("identity")));
  REQUIRE(h);
  REQUIRE_FALSE(h->wait_for(max_test_wait));
  auto before = eng.status(h->id());
  REQUIRE(before);
  CHECK(state_of(*before, "identity") == "SUCCESS");  // the link_error ran
  CHECK(state_of(*before, "noop") == "REVOKED");      // the link did not
  auto letters = eng.dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  auto again = eng.replay_dead_letter(letters->front().as_map().at("id").as_int());
  REQUIRE(again);
  auto r = again->wait_for(max_test_wait);
  REQUIRE(r);
  auto after = eng.status(h->id());
  REQUIRE(after);
  CHECK(after->as_map().at("state") == value("SUCCESS"));
  CHECK(state_of(*after, "noop") == "SUCCESS");      // the link runs now
  CHECK(state_of(*after, "identity") == "SUCCESS");  // the link_error's run stays on record
}

TEST_CASE("link and link_error through the cluster client", "[integration][nats][callbacks]") {
  cluster_processes c{"callbacksclient", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  auto cl = connect(c);
  auto h = cl->submit(trellis::group(sig("add", {1, 1}), sig("add", {2, 2})).link(sig("xsum")).link_error(sig("noop")));
  REQUIRE(h);
  auto r = h->wait_for(max_test_wait);
  INFO((r ? std::string{} : to_string(r.error())) << "\n" << c.logs());
  REQUIRE(r);
  CHECK(to_json(*r) == "[2,4]");
  auto status = cl->status(h->id());
  REQUIRE(status);
  CHECK(state_of(*status, "xsum") == "SUCCESS");
  CHECK(state_of(*status, "noop") == "REVOKED");
  auto rows = trellis::test::open_store(c.db())->nodes_of(h->id());
  REQUIRE(rows);
  for (const auto& n : *rows) {
    if (n.task == "xsum") {
      CHECK(to_json(n.result) == "6");
    }
  }

  auto bad = cl->submit(trellis::chain(sig("add", {1, 2}), trellis::signature("fail", {"boom"}).immutable())
                            .link_error(sig("identity")));
  REQUIRE(bad);
  auto f = bad->wait_for(max_test_wait);
  REQUIRE_FALSE(f);
  status = cl->status(bad->id());
  REQUIRE(status);
  CHECK(state_of(*status, "identity") == "SUCCESS");
  CHECK(c.stop_all());
}

TEST_CASE("a callback pending when the run is killed runs once after resume, and only then is the workflow finished",
          "[integration][recovery][callbacks]") {
  trellis::test::temp_dir dir;
  auto db = dir.file("store.db");
  auto touched = dir.file("touched");
  // The main canvas ends at once; its link sleeps, then touches a file.
  json flow = {{"task", "add"},
               {"args", {1, 2}},
               {"options",
                {{"link",
                  {{"chain", json::array({json{{"task", "sleep_ms"}, {"args", {3000}}, {"options", {{"immutable", true}}}},
                                          json{{"task", "touch"}, {"args", {touched}}, {"options", {{"immutable", true}}}}})}}}}}};
  auto file = trellis::test::write_file(dir, "link.json", flow.dump());
  trellis::test::child_process run{{TRELLIS_DEMO_BIN, "run", file, "--db", db}, dir.file("run.out"), dir.file("run.err")};
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(db, "SELECT count(*) FROM nodes WHERE task = 'add' AND state = 3").value_or(0) ==
               1;
      },
      max_test_wait, "the main canvas recorded as SUCCESS"));
  run.kill(SIGKILL);
  REQUIRE(run.wait() == 128 + SIGKILL);
  // The main canvas succeeded, but its link had not ended: not finished.
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM workflows WHERE finished_at > 0") == 0);
  CHECK_FALSE(std::filesystem::exists(touched));

  auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, dir.file("resume"), max_test_wait);
  INFO("resume stdout:\n" << r.out << "\nresume stderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.status == 0);
  auto out = trellis::test::parse_outcome_line(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 3);
  // The link ran once: one line in the file, and add ran once too.
  std::ifstream in{touched};
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(all == "touched\n");
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM nodes WHERE task = 'add' AND attempt = 1") == 1);
  CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM nodes WHERE task = 'touch' AND state = 3") == 1);
}

TEST_CASE("revoking a workflow whose main canvas ended revokes its running link and keeps the main outcome",
          "[integration][engine][revoke][callbacks]") {
  trellis::engine eng{trellis::test::engine_config_for(":memory:"), demo_tasks()};
  // The link waits for a gate file that never comes, until it is stopped.
  trellis::test::temp_dir dir;
  auto h = eng.submit(sig("add", {2, 3}).link(
      trellis::signature("report_and_wait", {1, dir.file("never")}).immutable()));
  REQUIRE(h);
  REQUIRE(trellis::test::wait_until(
      [&] {
        auto st = eng.status(h->id());
        return st && state_of(*st, "report_and_wait") == "STARTED";
      },
      max_test_wait, "the link running"));
  auto answer = eng.revoke(h->id(), {std::nullopt, true});
  REQUIRE(answer);
  CHECK(answer->as_map().at("state") == value("SUCCESS"));
  auto r = h->wait_for(max_test_wait);
  REQUIRE(r);
  CHECK(to_json(*r) == "5");
  auto st = eng.status(h->id());
  REQUIRE(st);
  CHECK(st->as_map().at("state") == value("SUCCESS"));
  CHECK(state_of(*st, "report_and_wait") == "REVOKED");
}

TEST_CASE("a link pending when the dispatcher is killed runs once under the next dispatcher",
          "[integration][nats][recovery][callbacks]") {
  cluster_processes c{"callbackscrash", {}};
  auto& first = c.start_dispatcher(c.db());
  c.wait_running(first);
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  auto touched = c.dir().file("touched");
  json flow = {{"task", "add"},
               {"args", {1, 2}},
               {"options",
                {{"link",
                  {{"chain", json::array({json{{"task", "sleep_ms"}, {"args", {1500}}, {"options", {{"immutable", true}}}},
                                          json{{"task", "touch"}, {"args", {touched}}, {"options", {{"immutable", true}}}}})}}}}}};
  auto file = trellis::test::write_file(c.dir(), "link.json", flow.dump());
  auto submitted = c.submit(file);
  REQUIRE(submitted.status == 0);
  auto id = json::parse(submitted.last_line())["id"].get<std::string>();
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(c.db(), "SELECT count(*) FROM nodes WHERE task = 'add' AND state = 3")
                   .value_or(0) == 1;
      },
      max_test_wait, "the main canvas recorded as SUCCESS"));
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM workflows WHERE finished_at > 0") == 0);

  c.wait_running(c.start_dispatcher(c.db()));
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(c.db(), "SELECT count(*) FROM workflows WHERE state = 3").value_or(0) == 1;
      },
      max_test_wait, "the workflow to finish with SUCCESS"));
  std::ifstream in{touched};
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(c.logs());
  CHECK(all == "touched\n");
  auto store = trellis::test::open_store(c.db());
  auto wf = store->find_workflow(id);
  REQUIRE(wf);
  REQUIRE(*wf);
  CHECK(to_json((*wf)->result) == "3");
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM nodes WHERE task = 'touch' AND state = 3 AND attempt = 1") ==
        1);
  CHECK(c.stop_all());
}
