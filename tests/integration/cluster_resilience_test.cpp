// Cluster mode when the broker fails or lies: the NATS server restarted
// mid-run, one node of a three-node JetStream cluster killed mid-run, and
// poison published straight onto a task subject. Every process is a real
// one (`trellis-demo dispatcher`, `trellis-demo worker`, `trellis submit`),
// started and stopped by its PID.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include "trellis/envelope.hpp"
#include "trellis/transport/nats_transport.hpp"
#include "trellis/transport/subjects.hpp"

#include <nats/nats.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace std::string_literals;
using nlohmann::json;
using trellis::test::child_process;
using trellis::test::cluster_processes;
using trellis::test::count_rows;
using trellis::test::max_test_wait;
using trellis::test::temp_dir;
using trellis::test::try_count;
using trellis::test::wait_until;

/// A workflow submitted for a test: its file, what it must end with and how
/// many task nodes it has.
struct planned_workflow {
  std::string name;
  json canvas;
  json result;
  int leaves = 0;
  std::string id;  // once submitted
};

/// Three workflows that run for a while on a few handler threads, so a
/// failure in the middle finds all of them in flight: a group of sleeps, a
/// chain of sleeps (each step passes its result on) and a chord of sleeps.
std::vector<planned_workflow> workflows_in_flight() {
  std::vector<planned_workflow> out;
  json group = json::array();
  for (int i = 0; i < 16; ++i) {
    group.push_back({{"task", "sleep_ms"}, {"args", {100}}});
  }
  out.push_back({"group", {{"group", group}}, json(std::vector<int>(16, 100)), 16, ""});

  // The longest of the three (about 2 s), so that it is still running when
  // the test sees the first nodes succeed, even where starting each submit
  // client is slow (a sanitizer build).
  json chain = json::array({{{"task", "sleep_ms"}, {"args", {100}}}});
  for (int i = 1; i < 20; ++i) {
    chain.push_back({{"task", "sleep_ms"}});
  }
  out.push_back({"chain", {{"chain", chain}}, 100, 20, ""});

  json header = json::array();
  for (int i = 0; i < 12; ++i) {
    header.push_back({{"task", "sleep_ms"}, {"args", {60}}});
  }
  out.push_back({"chord", {{"chord", {{"header", header}, {"body", {{"task", "xsum"}}}}}}, 720, 13, ""});
  return out;
}

/// The flags of every worker: two handler threads, a few tasks fetched at once.
const std::vector<std::string> worker_flags{"--concurrency", "2", "--fetch-batch", "4"};

/// Starts the cluster's one dispatcher (on `c.db()`) and `workers` workers,
/// and waits until each of them runs. Returns the dispatcher.
child_process& start_running(cluster_processes& c, int workers) {
  auto& dispatcher = c.start_dispatcher(c.db());
  c.wait_running(dispatcher);
  for (int i = 0; i < workers; ++i) {
    c.wait_running(c.start_worker(worker_flags));
  }
  return dispatcher;
}

/// Submits each workflow without waiting for it: the id comes back once
/// the dispatcher committed it.
void submit_all(cluster_processes& procs, std::vector<planned_workflow>& flows) {
  for (auto& f : flows) {
    auto file = trellis::test::write_file(procs.dir(), f.name + ".json", f.canvas.dump());
    auto r = procs.submit(file);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << procs.logs());
    REQUIRE(r.status == 0);
    f.id = json::parse(r.last_line()).at("id").get<std::string>();
  }
}

std::string sql_list(const std::vector<planned_workflow>& flows) {
  std::string ids;
  for (const auto& f : flows) {
    ids += (ids.empty() ? "'" : ",'") + f.id + "'";
  }
  return "(" + ids + ")";
}

/// Task nodes of `flows` that succeeded so far (0 while the store is busy).
std::int64_t nodes_done(const std::string& db, const std::vector<planned_workflow>& flows) {
  auto sql = "SELECT count(*) FROM nodes WHERE state = 3 AND workflow_id IN " + sql_list(flows);
  return try_count(db, sql.c_str()).value_or(0);
}

std::int64_t total_leaves(const std::vector<planned_workflow>& flows) {
  std::int64_t n = 0;
  for (const auto& f : flows) {
    n += f.leaves;
  }
  return n;
}

/// Submits `flows` and waits until they are under way: a few task nodes
/// succeeded, but not all of them, or a failure now would prove nothing.
/// Returns how many succeeded.
std::int64_t submit_and_wait_mid_run(cluster_processes& procs, std::vector<planned_workflow>& flows) {
  submit_all(procs, flows);
  REQUIRE(
      wait_until([&] { return nodes_done(procs.db(), flows) >= 4; }, max_test_wait, "the first task nodes to succeed"));
  auto done_before = nodes_done(procs.db(), flows);
  INFO(procs.logs());
  REQUIRE(done_before < total_leaves(flows));
  return done_before;
}

/// Waits until every workflow of `flows` finished, then checks that each
/// succeeded with its result and that each node was recorded once: one row
/// per node, every one a success of attempt 1 (a redelivered task ran again
/// under the same attempt, and the outcome that came second changed
/// nothing), no failed attempt and no dead letter.
void check_completed_once(cluster_processes& procs, const std::vector<planned_workflow>& flows,
                          const std::string& context) {
  auto finished_sql = "SELECT count(*) FROM workflows WHERE state IN (3, 4, 6) AND id IN " + sql_list(flows);
  bool finished = wait_until(
      [&] {
        return try_count(procs.db(), finished_sql.c_str()).value_or(0) == static_cast<std::int64_t>(flows.size());
      },
      max_test_wait, "every workflow to finish");
  INFO(context << "\n" << procs.logs());
  REQUIRE(finished);
  auto store = trellis::test::open_store(procs.db());
  for (const auto& f : flows) {
    INFO("workflow " << f.name << " (" << f.id << ")");
    auto wf = store->find_workflow(f.id);
    REQUIRE(wf);
    REQUIRE(*wf);
    CHECK(trellis::to_string((*wf)->state) == "SUCCESS");
    CHECK(json::parse(trellis::to_json((*wf)->result)) == f.result);
    auto where = " WHERE workflow_id = '" + f.id + "'";
    CHECK(count_rows(procs.db(), "SELECT count(*) FROM nodes" + where) == f.leaves);
    CHECK(count_rows(procs.db(), "SELECT count(*) FROM nodes" + where + " AND state = 3 AND attempt = 1") == f.leaves);
    CHECK(count_rows(procs.db(), "SELECT count(*) FROM attempts" + where) == 0);
  }
  CHECK(count_rows(procs.db(), "SELECT count(*) FROM dead_letters") == 0);
}

/// Every touch mark in `marks` has exactly one line: its step ran once.
void check_each_made_once(const std::vector<std::string>& marks) {
  std::vector<std::string> not_once;
  for (const auto& m : marks) {
    if (auto lines = trellis::test::line_count(m); lines != 1) {
      not_once.push_back(m + ": " + std::to_string(lines) + " lines");
    }
  }
  INFO(not_once.size() << " of " << marks.size() << " marks not made exactly once");
  CHECK(not_once.empty());
}

}  // namespace

TEST_CASE(
    "A NATS server restarted mid-run on the same port and store loses no workflow in flight, and every node "
    "is recorded once",
    "[integration][nats][recovery]") {
  trellis::test::nats_server server;
  // Deliveries lost with the server come again after the AckWait. Longer
  // than a worker's failed outcome report (publish timeout 5 s), so the
  // tasks it marks in progress meanwhile are not delivered again.
  auto procs = cluster_processes::on_broker(server.url(), "restart", {}, {"--ack-wait-ms", "8000"});
  start_running(procs, 2);

  auto flows = workflows_in_flight();
  auto done_before = submit_and_wait_mid_run(procs, flows);

  std::string how;
  SECTION("stopped with SIGTERM") {
    how = "SIGTERM";
    server.stop();
  }
  SECTION("killed with SIGKILL") {
    how = "SIGKILL";
    server.kill();
  }
  server.start();  // same port, same store directory
  check_completed_once(procs, flows,
                       "server " + how + " after " + std::to_string(done_before) + " nodes; server log:\n" +
                           server.log() + "\n" + server.jetstream_summary());
  // The processes rode out the restart: none of them exited, and each drains.
  CHECK(procs.stop_all());
}

TEST_CASE(
    "A dispatcher killed with SIGKILL mid-run and started again on its store finishes every workflow in "
    "flight, and every node is recorded once",
    "[integration][nats][recovery]") {
  trellis::test::nats_server server;
  // Events the dead dispatcher never acked come again soon.
  auto procs = cluster_processes::on_broker(server.url(), "dispatcherkill", {}, {"--ack-wait-ms", "2000"});
  auto& first = start_running(procs, 2);

  auto flows = workflows_in_flight();
  auto done_before = submit_and_wait_mid_run(procs, flows);
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);

  // The workers keep running and reporting into the event stream meanwhile.
  procs.wait_running(procs.start_dispatcher(procs.db()));
  check_completed_once(
      procs, flows, "dispatcher killed after " + std::to_string(done_before) + " nodes\n" + server.jetstream_summary());
  CHECK(procs.stop_all());
}

TEST_CASE(
    "A dispatcher killed with SIGKILL and started again publishes its ready tasks again without running any "
    "of them twice: 200 chains of a sleep and a mark leave every mark once",
    "[integration][nats][recovery]") {
  // Issue 9, item 2. A restore publishes every ready task again, all in one
  // call. From 128 tasks on, the transport packs such a call, and a pack's
  // message id is none the broker stored for the first copies, so its
  // deduplication let through every task that had run or was still queued,
  // and each ran twice.
  trellis::test::nats_server server;
  auto procs = cluster_processes::on_broker(server.url(), "restartdedup", {}, {"--ack-wait-ms", "2000"});
  auto& first = procs.start_dispatcher(procs.db());
  procs.wait_running(first);
  for (int i = 0; i < 2; ++i) {
    procs.wait_running(procs.start_worker({"--concurrency", "4", "--fetch-batch", "4"}));
  }

  // One submission: its 200 sleeps go out first, and each mark goes out
  // alone once its sleep's outcome is committed, queued behind the sleeps.
  constexpr int chains = 200;
  std::vector<std::string> marks;
  json group = json::array();
  for (int i = 0; i < chains; ++i) {
    marks.push_back(procs.dir().file("mark-" + std::to_string(i)));
    json touch{{"task", "touch"}, {"args", {marks.back()}}, {"options", {{"immutable", true}}}};
    group.push_back({{"chain", json::array({json{{"task", "sleep_ms"}, {"args", {100}}}, touch})}});
  }
  // Each chain ends with its mark's line count: 1.
  std::vector<planned_workflow> flows{{"marks", {{"group", group}}, json(std::vector<int>(chains, 1)), 2 * chains, ""}};
  submit_all(procs, flows);

  // Killed while most sleeps are still queued: at most a few marks have a
  // committed outcome, so the restore has well over 128 tasks ready.
  REQUIRE(wait_until([&] { return nodes_done(procs.db(), flows) >= 40; }, max_test_wait, "40 task nodes to succeed"));
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);

  // Meanwhile the workers run everything queued, the marks published before
  // the kill included; those outcomes wait in the event stream, so every
  // one of those marks is ready again at the restore and goes out a second
  // time.
  auto names = trellis::detail::subject_space::make(procs.ns());
  REQUIRE(names);
  REQUIRE(wait_until(
      [&] {
        auto owed = server.stream_backlog(names->task_stream());
        return owed && owed->first == 0 && owed->second > 0;
      },
      max_test_wait, "the workers to run every queued task"));
  int marked_while_down = 0;
  for (const auto& m : marks) {
    marked_while_down += trellis::test::line_count(m) > 0 ? 1 : 0;
  }
  INFO(marked_while_down << " marks made before the restart");
  REQUIRE(marked_while_down > 0);

  procs.wait_running(procs.start_dispatcher(procs.db()));
  check_completed_once(procs, flows, server.jetstream_summary());
  check_each_made_once(marks);
  CHECK(procs.stop_all());
}

TEST_CASE(
    "A dispatcher restarted while its tasks wait packed in the task stream publishes none of them again: "
    "400 marks made by two worker processes are each made once",
    "[integration][nats][recovery]") {
  // Issue 9, item 2, the rest: a task whose first copy went out inside a
  // pack (a fan-out of 128 tasks or more) has no message id of its own that
  // the broker could deduplicate a single copy against, so a restore must
  // not publish it again while the broker still holds it.
  trellis::test::nats_server server;
  auto procs = cluster_processes::on_broker(server.url(), "packedrestore", {}, {"--ack-wait-ms", "2000"});
  auto& first = procs.start_dispatcher(procs.db());
  procs.wait_running(first);

  constexpr int members = 400;
  std::vector<std::string> marks;
  json group = json::array();
  for (int i = 0; i < members; ++i) {
    marks.push_back(procs.dir().file("mark-" + std::to_string(i)));
    group.push_back({{"task", "touch"}, {"args", {marks.back()}}});
  }
  std::vector<planned_workflow> flows{{"marks", {{"group", group}}, json(std::vector<int>(members, 1)), members, ""}};
  submit_all(procs, flows);
  // Answered after the commit; published right after it, packed.
  auto published = [&] {
    auto r = procs.client({"metrics"});
    std::int64_t total = 0;
    for (const auto& line : r.lines()) {
      if (line.rfind("trellis_tasks_published_total{", 0) == 0) {
        total += std::stoll(line.substr(line.rfind(' ') + 1));
      }
    }
    return total;
  };
  REQUIRE(wait_until([&] { return published() == members; }, max_test_wait, "the dispatcher to publish every mark"));

  // No worker yet: every mark still waits in the stream when the
  // dispatcher dies and its successor restores the workflow.
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);
  procs.wait_running(procs.start_dispatcher(procs.db()));
  for (int i = 0; i < 2; ++i) {
    procs.wait_running(procs.start_worker({"--concurrency", "4", "--fetch-batch", "4"}));
  }

  check_completed_once(procs, flows, server.jetstream_summary());
  check_each_made_once(marks);
  CHECK(procs.stop_all());
}

TEST_CASE(
    "In a three-node JetStream cluster with replicated streams, killing the node that leads the task stream "
    "mid-run loses no workflow in flight",
    "[integration][nats][recovery]") {
  trellis::test::nats_cluster nodes;
  // The AckWait as in the restart test: leader elections take seconds.
  auto procs =
      cluster_processes::on_broker(nodes.urls(), "replicated", {}, {"--ack-wait-ms", "8000", "--replicas", "3"});
  start_running(procs, 2);

  auto flows = workflows_in_flight();
  auto done_before = submit_and_wait_mid_run(procs, flows);
  // Both streams are replicated on all three nodes.
  auto report = nodes.node(0).jetstream_report();
  int replicated = 0;
  for (const auto& account : report.value("account_details", json::array())) {
    for (const auto& s : account.value("stream_detail", json::array())) {
      INFO("stream " << s.dump());
      auto name = s.value("name", "");
      if (name == "TRELLIS_REPLICATED_TASKS" || name == "TRELLIS_REPLICATED_EVENTS") {
        CHECK(s.value("config", json::object()).value("num_replicas", 0) == 3);
        ++replicated;
      }
    }
  }
  CHECK(replicated == 2);

  auto leader = nodes.stream_leader("TRELLIS_REPLICATED_TASKS");
  auto doomed = nodes.index_of(leader);
  INFO("task stream leader: '" << leader << "'");
  REQUIRE(doomed);
  nodes.node(*doomed).kill();

  check_completed_once(
      procs, flows,
      "killed node " + leader + " after " + std::to_string(done_before) + " nodes\n" + nodes.jetstream_summary());
  CHECK(procs.stop_all());
}

TEST_CASE(
    "Garbage bytes and a version 2 envelope published on a task subject are dead-lettered with their reasons "
    "and bytes, and the workers keep running",
    "[integration][nats][recovery]") {
  trellis::test::nats_server server;
  auto procs = cluster_processes::on_broker(server.url(), "poison", {}, {"--ack-wait-ms", "30000"});
  procs.wait_running(procs.start_dispatcher(procs.db()));
  auto& worker = procs.start_worker(worker_flags);
  procs.wait_running(worker);

  // Straight onto the task subject of `add`, `trellis.poison.task.default.add`, as a
  // foreign or newer publisher would: no dispatcher saw these.
  const std::string garbage = "\xc1\xff not msgpack at all \x00\x01"s;
  trellis::detail::envelope future;
  future.v = 2;
  future.type = trellis::detail::envelope_type::task;
  future.id = "future:0:1";
  future.workflow_id = "future";
  future.node = 0;
  future.attempt = 1;
  future.task = "add";
  future.queue = "default";
  future.args = {trellis::value{std::int64_t{1}}, trellis::value{std::int64_t{2}}};
  auto future_bytes = trellis::detail::encode(future);
  {
    trellis::detail::nats_config cfg;
    cfg.urls = {server.url()};
    cfg.ns = procs.ns();
    cfg.client_name = "poisoner";
    auto bus = trellis::detail::nats_transport::connect(cfg);
    INFO("connect: " << (bus ? std::string{"ok"} : to_string(bus.error())));
    REQUIRE(bus);
    std::vector<trellis::detail::outgoing_task> poison{{"poison-garbage", garbage, 0, {}, false, "add"},
                                                       {"poison-future", future_bytes, 0, {}, false, "add"}};
    auto sent = (*bus)->publish_tasks("default", poison);
    INFO("publish: " << (sent ? std::string{"ok"} : to_string(sent.error())));
    REQUIRE(sent);
  }

  auto letters_sql = "SELECT count(*) FROM dead_letters";
  bool both = wait_until([&] { return try_count(procs.db(), letters_sql).value_or(0) >= 2; }, max_test_wait,
                         "both poison messages to be dead-lettered");
  INFO(procs.logs());
  REQUIRE(both);
  auto letters = trellis::test::open_store(procs.db())->dead_letters(true);
  REQUIRE(letters);
  REQUIRE(letters->size() == 2);
  for (const auto& d : *letters) {
    INFO("dead letter: reason " << d.reason << ", error " << d.error);
    if (d.reason == "malformed_envelope") {
      CHECK(d.envelope == garbage);
    } else {
      CHECK(d.reason == "unsupported_version");
      CHECK(d.envelope == future_bytes);
      CHECK(d.error.find("version 2") != std::string::npos);
    }
    CHECK_FALSE(d.error.empty());
  }
  CHECK(letters->at(0).reason != letters->at(1).reason);

  // The worker is still there and serves the next workflow.
  REQUIRE_FALSE(worker.try_wait());
  json chain{{"chain", {{{"task", "add"}, {"args", {2, 2}}}, {{"task", "add"}, {"args", {3}}}}}};
  auto file = trellis::test::write_file(procs.dir(), "after.json", chain.dump());
  auto r = procs.submit(file, {"--wait"});
  CHECK(r.status == 0);
  auto out = json::parse(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 7);
  CHECK(procs.stop_all());
}

TEST_CASE(
    "A submission whose answer does not come is sent again and the workflow is submitted once, answered "
    "after its commit",
    "[integration][nats][recovery]") {
  trellis::test::nats_server server;
  auto procs = cluster_processes::on_broker(server.url(), "resend", {}, {"--ack-wait-ms", "30000"});
  auto& dispatcher = procs.start_dispatcher(procs.db());
  procs.wait_running(dispatcher);
  procs.wait_running(procs.start_worker(worker_flags));

  // Every copy of the request, as the server routes it: a plain subscriber
  // on the dispatcher's submission subject beside the dispatcher's own.
  natsConnection* raw_conn = nullptr;
  REQUIRE(natsConnection_ConnectTo(&raw_conn, server.url().c_str()) == NATS_OK);
  std::unique_ptr<natsConnection, decltype(&natsConnection_Destroy)> conn{raw_conn, natsConnection_Destroy};
  natsSubscription* raw_sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw_sub, conn.get(), "trellis.resend.submit.0") == NATS_OK);
  std::unique_ptr<natsSubscription, decltype(&natsSubscription_Destroy)> copies{raw_sub, natsSubscription_Destroy};
  REQUIRE(natsConnection_Flush(conn.get()) == NATS_OK);

  // The dispatcher stops answering (as one that committed and died before
  // its answer went out would), and the client is left waiting.
  dispatcher.kill(SIGSTOP);
  json chain{{"chain", {{{"task", "add"}, {"args", {20, 1}}}, {{"task", "add"}, {"args", {21}}}}}};
  auto file = trellis::test::write_file(procs.dir(), "resent.json", chain.dump());
  auto& client = procs.start_client(file, {"--wait"});
  int seen = 0;
  bool resent = wait_until(
      [&] {
        natsMsg* m = nullptr;
        if (natsSubscription_NextMsg(&m, copies.get(), 100) == NATS_OK) {
          natsMsg_Destroy(m);
          ++seen;
        }
        return seen >= 2;
      },
      max_test_wait, "the client to send its submission a second time");
  dispatcher.kill(SIGCONT);
  REQUIRE(resent);

  // The dispatcher takes both copies: the first submits, the second is
  // recognized by its workflow id; the client gets one of the answers.
  auto status = client.wait_for(max_test_wait);
  INFO("client stdout:\n"
       << client.stdout_text() << "\nclient stderr:\n"
       << client.stderr_text() << "\n"
       << procs.logs());
  REQUIRE(status);
  CHECK(*status == 0);
  auto out = json::parse(trellis::test::command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 42);
  CHECK(count_rows(procs.db(), "SELECT count(*) FROM workflows") == 1);
  CHECK(count_rows(procs.db(), "SELECT count(*) FROM nodes WHERE task = 'add'") == 2);
  CHECK(procs.stop_all());
}

TEST_CASE(
    "A replica count outside 1 to 5, from --replicas or TRELLIS_REPLICAS, is refused with exit 2 before "
    "anything connects",
    "[integration][cli]") {
  temp_dir dir;
  // Port 1 has no server: reaching it would fail with exit 4, not 2.
  auto flag =
      trellis::test::run_command({TRELLIS_DEMO_BIN, "worker", "--broker", "nats://127.0.0.1:1", "--replicas", "9"},
                                 dir.file("flag"), max_test_wait);
  INFO("stderr:\n" << flag.err);
  CHECK(flag.status == 2);
  auto env = trellis::test::run_command({"/usr/bin/env", "TRELLIS_REPLICAS=7", TRELLIS_DEMO_BIN, "dispatcher",
                                         "--broker", "nats://127.0.0.1:1", "--db", dir.file("d.db")},
                                        dir.file("env"), max_test_wait);
  INFO("stderr:\n" << env.err);
  CHECK(env.status == 2);
  CHECK(env.err.find("TRELLIS_REPLICAS: '7' is not a whole number") != std::string::npos);
}
