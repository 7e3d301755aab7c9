// Control over the broker (docs/cluster.md "Control"): `status`, `dlq`,
// `inspect`, `metrics` and `revoke` answered by running processes over NATS, against a
// real nats-server, a `trellis-demo dispatcher`, `trellis-demo worker`
// processes and the generic `trellis` client.

#include "support/cluster_processes.hpp"
#include "support/inspect_lines.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/wait_until.hpp"

#include "cli/control_commands.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/transport/cluster_bus.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::inspect;
using trellis::test::of_role;
using trellis::test::max_test_wait;
using trellis::test::wait_until;

/// A worker's flags: two handler threads taking four tasks a pull, unless a
/// test needs others.
std::vector<std::string> worker_flags(const std::string& concurrency = "2", const std::string& fetch_batch = "4") {
  return {"--concurrency", concurrency, "--fetch-batch", fetch_batch};
}


/// The active task `task` of workflow `id` on any worker, or null.
json active_task(const std::vector<json>& answers, const std::string& id, const std::string& task) {
  for (const auto& w : of_role(answers, "worker")) {
    for (const auto& t : w["active"]) {
      if (t["workflow_id"] == id && t["task"] == task) {
        return t;
      }
    }
  }
  return nullptr;
}

std::string submit_no_wait(cluster_processes& c, const std::string& file) {
  auto r = c.client({"submit", file});
  REQUIRE(r.status == 0);
  return json::parse(r.last_line())["id"].get<std::string>();
}

}  // namespace

TEST_CASE(
    "status over the broker prints status --db's line for a running and a finished workflow; an unknown id "
    "is exit 2",
    "[integration][nats]") {
  cluster_processes c{"ctlstatus", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  c.start_worker(worker_flags());
  auto file = trellis::test::write_file(
      c.dir(), "chain.json", R"({"chain": [{"task": "sleep_ms", "args": [3000]}, {"task": "add", "args": [1]}]})");
  auto id = submit_no_wait(c, file);

  auto running = c.client({"status", id});
  REQUIRE(running.status == 0);
  auto doc = json::parse(running.last_line());
  CHECK(doc["id"] == id);
  CHECK(doc["state"] == "STARTED");
  CHECK(doc["result"].is_null());
  CHECK(doc.contains("nodes"));
  CHECK(doc.contains("failed_attempts"));

  REQUIRE(wait_until(
      [&] {
        return json::parse(c.client({"status", id}).last_line())["state"] == "SUCCESS";
      },
      max_test_wait, "the workflow to succeed, seen over the broker"));
  auto over_broker = c.client({"status", id});
  auto from_store = c.cli({"status", id, "--db", c.db()});
  CHECK(over_broker.status == 0);
  CHECK(from_store.status == 0);
  CHECK(over_broker.last_line() == from_store.last_line());
  CHECK(json::parse(over_broker.last_line())["result"] == 3001);
  // The exact key order of the status line.
  CHECK(over_broker.last_line().rfind("{\"id\":\"" + id +
                                          "\",\"state\":\"SUCCESS\",\"result\":3001,\"error\":null,"
                                          "\"nodes\":[",
                                      0) == 0);

  auto unknown = c.client({"status", "no-such-workflow"});
  CHECK(unknown.status == 2);
  CHECK(unknown.out.empty());
  CHECK(unknown.err.find("no workflow with id no-such-workflow") != std::string::npos);
}

TEST_CASE("dlq list and replay over the broker go through the running dispatcher", "[integration][nats]") {
  cluster_processes c{"ctldlq", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  c.start_worker(worker_flags());
  // Fails once with no retry left: one dead letter. Replayed, attempt 2 succeeds.
  auto file = trellis::test::write_file(c.dir(), "flaky.json",
                                        R"({"task": "flaky", "args": [1], "options": {"retry": {"max_retries": 0}}})");
  auto failed = c.client({"submit", file, "--wait"});
  REQUIRE(failed.status == 1);
  auto id = trellis::test::parse_outcome_line(failed.last_line())["id"].get<std::string>();

  auto listed = c.client({"dlq", "list"});
  REQUIRE(listed.status == 0);
  REQUIRE(listed.lines().size() == 1);
  auto letter = json::parse(listed.lines()[0]);
  CHECK(letter["id"] == 1);
  CHECK(letter["workflow_id"] == id);
  CHECK(letter["task"] == "flaky");
  CHECK(letter["reason"] == "task_failed");
  CHECK(letter["replayed"] == false);
  CHECK(listed.out == c.cli({"dlq", "list", "--db", c.db()}).out);

  auto replayed = c.client({"dlq", "replay", "1"});
  INFO("replay stderr:\n" << replayed.err << "\n" << c.logs());
  CHECK(replayed.status == 0);
  auto outcome = trellis::test::parse_outcome_line(replayed.last_line());
  CHECK(outcome["id"] == id);
  CHECK(outcome["state"] == "SUCCESS");
  CHECK(outcome["result"] == 2);

  auto after = c.client({"dlq", "list"});
  REQUIRE(after.lines().size() == 1);
  CHECK(json::parse(after.lines()[0])["replayed"] == true);

  auto again = c.client({"dlq", "replay", "1"});
  CHECK(again.status == 2);
  CHECK(again.err.find("already replayed") != std::string::npos);
  auto missing = c.client({"dlq", "replay", "99"});
  CHECK(missing.status == 2);
  CHECK(missing.err.find("no dead letter with id 99") != std::string::npos);
}

TEST_CASE(
    "inspect sees two workers with their queues and an active sleep_ms task, and the dispatcher's "
    "workflows in flight",
    "[integration][nats]") {
  cluster_processes c{"ctlinspect", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  auto flags = worker_flags();
  flags.insert(flags.end(), {"--queues", "default,slow"});
  c.start_worker(flags);
  c.start_worker(flags);
  // Long enough to be seen running however slow the polling is; the test
  // ends (and kills the worker) as soon as it has looked.
  auto file = trellis::test::write_file(c.dir(), "sleep.json", R"({"task": "sleep_ms", "args": [30000]})");
  auto id = submit_no_wait(c, file);

  std::vector<json> answers;
  REQUIRE(wait_until(
      [&] {
        answers = inspect(c);
        return of_role(answers, "worker").size() == 2 && !active_task(answers, id, "sleep_ms").is_null();
      },
      max_test_wait, "inspect to list two workers, one running the sleep_ms task"));
  INFO(json(answers).dump());
  for (const auto& w : of_role(answers, "worker")) {
    CHECK(w["queues"] == json({"default", "slow"}));
    CHECK(w["all_queues"] == false);
    CHECK(w["concurrency"] == 2);
    CHECK(w["name"].get<std::string>().find("trellis-worker@") == 0);
  }
  CHECK(of_role(answers, "worker")[0]["name"] != of_role(answers, "worker")[1]["name"]);
  auto task = active_task(answers, id, "sleep_ms");
  CHECK(task["node"] == 0);
  CHECK(task["attempt"] == 1);
  CHECK(task["started_at"].get<std::int64_t>() > 0);
  CHECK(task["running_ms"].get<std::int64_t>() >= 0);

  auto dispatchers = of_role(answers, "dispatcher");
  REQUIRE(dispatchers.size() == 1);
  CHECK(dispatchers[0]["partition"] == 0);
  CHECK(dispatchers[0]["workflows_in_flight"] == json({id}));
}

/// One sample of a Prometheus text exposition.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Reads `text` as Prometheus text exposition, failing the test where it is
/// not: every line a `# HELP`/`# TYPE` or a `name{labels} value` sample,
/// every family declared once, every sample under its family's TYPE.
std::vector<sample> parse_exposition(const std::string& text) {
  static const std::regex type_line{R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))"};
  static const std::regex help_line{R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)"};
  static const std::regex sample_line{
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} (\S+))"};
  static const std::regex label{R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)\")"};
  std::vector<sample> samples;
  std::set<std::string> typed;
  std::set<std::string> helped;
  std::string family;
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, type_line)) {
      CHECK(typed.insert(m[1]).second);
      family = m[1];
    } else if (std::regex_match(line, m, help_line)) {
      CHECK(helped.insert(m[1]).second);
    } else {
      REQUIRE(std::regex_match(line, m, sample_line));
      sample s;
      s.name = m[1];
      std::string labels = m[2];
      for (std::sregex_iterator i{labels.begin(), labels.end(), label}, end; i != end; ++i) {
        CHECK(s.labels.emplace((*i)[1], (*i)[2]).second);
      }
      s.value = std::stod(m[3]);
      bool in_family =
          s.name == family || s.name == family + "_bucket" || s.name == family + "_sum" || s.name == family + "_count";
      CHECK(in_family);
      samples.push_back(std::move(s));
    }
  }
  return samples;
}

/// The sum of the samples named `name` whose labels include `match`.
double total(const std::vector<sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& match) {
  double sum = 0;
  for (const auto& s : samples) {
    bool matches = s.name == name;
    for (const auto& [k, v] : match) {
      matches = matches && s.labels.count(k) != 0 && s.labels.at(k) == v;
    }
    sum += matches ? s.value : 0;
  }
  return sum;
}

TEST_CASE("metrics gathers every process's series, labelled by process, as one valid Prometheus exposition",
          "[integration][nats]") {
  cluster_processes c{"ctlmetrics", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  // One queue per worker, so that which worker runs which task is certain.
  auto on_a = worker_flags();
  on_a.insert(on_a.end(), {"--queues", "qa"});
  auto on_b = worker_flags();
  on_b.insert(on_b.end(), {"--queues", "qb"});
  c.start_worker(on_a);
  c.start_worker(on_b);

  // Five tasks: three on qa (two adds and the body), two adds on qb.
  auto file = trellis::test::write_file(c.dir(), "chord.json", R"({"chord": {"header": [
      {"task": "add", "args": [1, 1], "options": {"queue": "qa"}},
      {"task": "add", "args": [2, 2], "options": {"queue": "qa"}},
      {"task": "add", "args": [3, 3], "options": {"queue": "qb"}},
      {"task": "add", "args": [4, 4], "options": {"queue": "qb"}}],
    "body": {"task": "xsum", "options": {"queue": "qa"}}}})");
  auto run = c.client({"submit", file, "--wait"});
  REQUIRE(run.status == 0);
  CHECK(trellis::test::parse_outcome_line(run.last_line())["result"] == 20);

  // The names inspect reports, by role and queue.
  std::vector<json> answers;
  REQUIRE(wait_until([&] { return (answers = inspect(c)).size() == 3; }, max_test_wait,
                     "inspect to list two workers and the dispatcher"));
  std::map<std::string, std::string> worker_of_queue;
  for (const auto& w : of_role(answers, "worker")) {
    worker_of_queue[w["queues"][0].get<std::string>()] = w["name"].get<std::string>();
  }
  REQUIRE(worker_of_queue.size() == 2);
  auto dispatcher = of_role(answers, "dispatcher").at(0)["name"].get<std::string>();

  // A process answers metrics on its own; wait until all three are in one
  // output (a slow process may miss one window).
  std::string text;
  std::vector<sample> samples;
  auto has_process = [&](const std::string& name) {
    for (const auto& s : samples) {
      if (s.labels.count("process") != 0 && s.labels.at("process") == name) {
        return true;
      }
    }
    return false;
  };
  REQUIRE(wait_until(
      [&] {
        auto r = c.client({"metrics", "--timeout-ms", "1000"});
        INFO("metrics stderr:\n" << r.err);
        REQUIRE(r.status == 0);
        CHECK(r.err.empty());
        text = r.out;
        samples = parse_exposition(text);
        return has_process(worker_of_queue["qa"]) && has_process(worker_of_queue["qb"]) && has_process(dispatcher);
      },
      max_test_wait, "metrics to show both workers and the dispatcher"));
  INFO(text);
  for (const auto& s : samples) {
    CHECK(s.labels.count("process") == 1);
  }

  // Each worker saw the tasks of its queue start (queue wait, one per task).
  CHECK(total(samples, "trellis_queue_wait_seconds_count", {{"process", worker_of_queue["qa"]}}) == 3);
  CHECK(total(samples, "trellis_queue_wait_seconds_count", {{"process", worker_of_queue["qb"]}}) == 2);
  CHECK(total(samples, "trellis_queue_wait_seconds_count", {{"process", worker_of_queue["qa"]}, {"queue", "qb"}}) == 0);

  // The dispatcher published and applied all five, per queue and task.
  CHECK(total(samples, "trellis_tasks_published_total", {{"process", dispatcher}}) == 5);
  CHECK(total(samples, "trellis_tasks_succeeded_total", {{"process", dispatcher}}) == 5);
  CHECK(total(samples, "trellis_tasks_succeeded_total", {{"process", dispatcher}, {"task", "add"}, {"queue", "qb"}}) ==
        2);
  CHECK(total(samples, "trellis_tasks_succeeded_total", {{"process", dispatcher}, {"task", "xsum"}}) == 1);
  CHECK(total(samples, "trellis_workflows_finished_total", {{"process", dispatcher}}) == 1);
  CHECK(total(samples, "trellis_tasks_failed_total", {}) == 0);

  // Consumer lag: the dispatcher reports the depth of both queues it used.
  for (const auto& q : {"qa", "qb"}) {
    bool reported = false;
    for (const auto& s : samples) {
      reported = reported ||
                 (s.name == "trellis_queue_depth" && s.labels.count("process") != 0 &&
                  s.labels.at("process") == dispatcher && s.labels.count("queue") != 0 && s.labels.at("queue") == q);
    }
    CHECK(reported);
  }
}

TEST_CASE(
    "A dispatcher that keeps no graph in memory (--max-cached-nodes 0) runs a chord and a chain to their "
    "results, reading each graph back from the store, as its metrics show",
    "[integration][nats]") {
  cluster_processes c{"ctlnocache", {}, {"--ack-wait-ms", "30000"}};
  c.wait_running(c.start_dispatcher(c.db(), {"--max-cached-nodes", "0"}));
  c.wait_running(c.start_worker(worker_flags()));

  auto chord = trellis::test::write_file(c.dir(), "chord.json", R"({"chord": {"header": [
      {"task": "add", "args": [1, 1]}, {"task": "add", "args": [2, 2]},
      {"task": "add", "args": [3, 3]}, {"task": "add", "args": [4, 4]}],
    "body": {"task": "xsum"}}})");
  auto chord_run = c.client({"submit", chord, "--wait"});
  INFO("chord stderr:\n" << chord_run.err << "\n" << c.logs());
  REQUIRE(chord_run.status == 0);
  CHECK(trellis::test::parse_outcome_line(chord_run.last_line())["result"] == 20);
  auto chain = trellis::test::write_file(
      c.dir(), "chain.json", R"({"chain": [{"task": "add", "args": [2, 2]}, {"task": "add", "args": [3]}]})");
  auto chain_run = c.client({"submit", chain, "--wait"});
  REQUIRE(chain_run.status == 0);
  CHECK(trellis::test::parse_outcome_line(chain_run.last_line())["result"] == 7);

  auto names = of_role(inspect(c), "dispatcher");
  REQUIRE(names.size() == 1);
  auto dispatcher = names[0]["name"].get<std::string>();
  auto r = c.client({"metrics", "--timeout-ms", "1000"});
  REQUIRE(r.status == 0);
  auto samples = parse_exposition(r.out);
  INFO(r.out);
  CHECK(total(samples, "trellis_graph_rebuilds_total", {{"process", dispatcher}}) > 0);
  CHECK(total(samples, "trellis_graph_evictions_total", {{"process", dispatcher}}) > 0);
  CHECK(total(samples, "trellis_duplicate_outcomes_total", {{"process", dispatcher}}) == 0);
  CHECK(c.stop_all());
}

TEST_CASE("revoke stops a running workflow: queued and later steps never run, and it ends REVOKED",
          "[integration][nats]") {
  cluster_processes c{"ctlrevoke", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  // One handler thread taking one task at a time: the group's touches wait
  // in the queue behind the sleep while it runs.
  c.start_worker(worker_flags("1", "1"));

  auto queued_a = c.dir().file("queued-a");
  auto queued_b = c.dir().file("queued-b");
  auto later = c.dir().file("later");
  json flow = {{"chain",
                {{{"group",
                   {{{"task", "sleep_ms"}, {"args", {6000}}},
                    {{"task", "touch"}, {"args", {queued_a}}},
                    {{"task", "touch"}, {"args", {queued_b}}}}}},
                 {{"task", "touch"}, {"args", {later}}, {"options", {{"immutable", true}}}}}}};
  auto file = trellis::test::write_file(c.dir(), "flow.json", flow.dump());
  auto& waiting = c.start_client(file, {"--wait"});

  // The workflow id comes from the dispatcher's view: the one in flight.
  std::vector<json> answers;
  std::string id;
  REQUIRE(wait_until(
      [&] {
        answers = inspect(c, "300");
        auto d = of_role(answers, "dispatcher");
        if (d.size() != 1 || d[0]["workflows_in_flight"].size() != 1) {
          return false;
        }
        id = d[0]["workflows_in_flight"][0].get<std::string>();
        return !active_task(answers, id, "sleep_ms").is_null();
      },
      max_test_wait, "the sleep_ms task to be running"));

  auto revoked = c.client({"revoke", id});
  INFO("revoke stderr:\n" << revoked.err << "\n" << c.logs());
  REQUIRE(revoked.status == 0);
  auto line = trellis::test::parse_outcome_line(revoked.last_line());
  CHECK(line["id"] == id);
  CHECK(line["state"] == "REVOKED");
  CHECK(line["error"]["type"] == "revoked");

  // The client waiting with --wait prints the same REVOKED line, as `run` would.
  auto waited = waiting.wait_for(max_test_wait);
  REQUIRE(waited);
  CHECK(*waited == 1);
  auto waited_line =
      trellis::test::parse_outcome_line(trellis::test::command_result{1, false, waiting.stdout_text(), ""}.last_line());
  CHECK(waited_line == line);

  // The worker heard of it while the sleep still ran, so the touches queued
  // behind it are skipped.
  REQUIRE(wait_until(
      [&] {
        answers = inspect(c, "300");
        auto w = of_role(answers, "worker");
        return w.size() == 1 && w[0]["revoked_known"] == 1;
      },
      max_test_wait, "the worker to know the revoked workflow"));
  REQUIRE_FALSE(active_task(answers, id, "sleep_ms").is_null());

  // A later workflow on the same single-threaded worker finishes only after
  // the revoked workflow's queued tasks were taken (FIFO) and its sleep's
  // outcome was reported: then nothing of it can run any more.
  auto sync = c.dir().file("sync");
  auto sync_file = trellis::test::write_file(c.dir(), "sync.json", json{{"task", "touch"}, {"args", {sync}}}.dump());
  auto synced = c.client({"submit", sync_file, "--wait"});
  CHECK(synced.status == 0);
  CHECK(trellis::test::read_file(sync).has_value());
  CHECK_FALSE(trellis::test::read_file(queued_a).has_value());
  CHECK_FALSE(trellis::test::read_file(queued_b).has_value());
  CHECK_FALSE(trellis::test::read_file(later).has_value());

  auto status = c.client({"status", id});
  REQUIRE(status.status == 0);
  auto doc = json::parse(status.last_line());
  CHECK(doc["state"] == "REVOKED");
  CHECK(doc["error"]["type"] == "revoked");

  // Revoking it again, or revoking an unknown workflow, is refused with exit 2.
  auto twice = c.client({"revoke", id});
  CHECK(twice.status == 2);
  CHECK(twice.err.find("already finished as REVOKED") != std::string::npos);
  auto unknown = c.client({"revoke", "no-such-workflow"});
  CHECK(unknown.status == 2);
  CHECK(unknown.err.find("no workflow with id no-such-workflow") != std::string::npos);
}

TEST_CASE("revoke --node --terminate stops one running group member on its worker; the others finish",
          "[integration][nats][revoke]") {
  cluster_processes c{"ctlnode", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  c.start_worker(worker_flags("2", "1"));

  // Nodes: 0 the group, 1 a ten-minute sleep, 2 a touch queued behind it.
  auto touched = c.dir().file("touched");
  json flow = {{"group", {{{"task", "sleep_ms"}, {"args", {600'000}}}, {{"task", "touch"}, {"args", {touched}}}}}};
  auto& waiting = c.start_client(trellis::test::write_file(c.dir(), "flow.json", flow.dump()), {"--wait"});
  std::string id;
  REQUIRE(wait_until(
      [&] {
        auto d = of_role(inspect(c, "300"), "dispatcher");
        if (d.size() != 1 || d[0]["workflows_in_flight"].size() != 1) {
          return false;
        }
        id = d[0]["workflows_in_flight"][0].get<std::string>();
        return !active_task(inspect(c, "300"), id, "sleep_ms").is_null();
      },
      max_test_wait, "the sleep_ms task to be running"));

  auto revoked = c.client({"revoke", id, "--node", "1", "--terminate"});
  INFO("revoke stderr:\n" << revoked.err << "\n" << c.logs());
  REQUIRE(revoked.status == 0);
  CHECK(json::parse(revoked.last_line()) ==
        json{{"id", id}, {"node", 1}, {"state", "REVOKED"}, {"revoked", {1}}});

  // The sleep is stopped on its worker (it had ten minutes to go), the touch
  // ran, and the group ends REVOKED as its revoked member is.
  auto waited = waiting.wait_for(max_test_wait);
  REQUIRE(waited);
  CHECK(*waited == 1);
  auto line =
      trellis::test::parse_outcome_line(trellis::test::command_result{1, false, waiting.stdout_text(), ""}.last_line());
  CHECK(line["state"] == "REVOKED");
  CHECK(line["error"]["node"] == 1);
  CHECK(trellis::test::read_file(touched).has_value());
  REQUIRE(wait_until([&] { return active_task(inspect(c, "300"), id, "sleep_ms").is_null(); }, max_test_wait,
                     "the revoked sleep to stop"));

  // Finished now: another revoke of it is refused with exit 2, nothing on stdout.
  auto missing = c.client({"revoke", id, "--node", "7"});
  CHECK(missing.status == 2);
  CHECK(missing.out.empty());
  CHECK(c.stop_all());
}

TEST_CASE(
    "a worker started after a revocation learns of it from the revoked stream and skips the workflow's "
    "queued tasks",
    "[integration][nats]") {
  cluster_processes c{"ctllate", {}, {"--ack-wait-ms", "30000"}};
  c.wait_running(c.start_dispatcher(c.db()));

  // No worker yet: both touches wait in the task stream.
  auto queued_a = c.dir().file("queued-a");
  auto queued_b = c.dir().file("queued-b");
  json flow = {{"group", {{{"task", "touch"}, {"args", {queued_a}}}, {{"task", "touch"}, {"args", {queued_b}}}}}};
  auto id = submit_no_wait(c, trellis::test::write_file(c.dir(), "flow.json", flow.dump()));
  auto revoked = c.client({"revoke", id});
  INFO("revoke stderr:\n" << revoked.err << "\n" << c.logs());
  REQUIRE(revoked.status == 0);

  // A one-thread worker starting now reads the notice before its first
  // fetch returns anything it could run.
  auto& worker = c.start_worker(worker_flags("1", "1"));
  c.wait_running(worker);
  REQUIRE(wait_until(
      [&] {
        auto w = of_role(inspect(c, "300"), "worker");
        return w.size() == 1 && w[0]["revoked_known"] == 1;
      },
      max_test_wait, "the late worker to know the revoked workflow"));

  // FIFO on one thread: once a later workflow has run, the revoked one's
  // queued tasks were taken before it, and skipped.
  auto sync = c.dir().file("sync");
  auto sync_file = trellis::test::write_file(c.dir(), "sync.json", json{{"task", "touch"}, {"args", {sync}}}.dump());
  auto synced = c.client({"submit", sync_file, "--wait"});
  INFO(c.logs());
  CHECK(synced.status == 0);
  CHECK(trellis::test::read_file(sync).has_value());
  CHECK_FALSE(trellis::test::read_file(queued_a).has_value());
  CHECK_FALSE(trellis::test::read_file(queued_b).has_value());
  CHECK(c.stop_all());
}

TEST_CASE("a garbage control request gets an error reply and the dispatcher keeps running", "[integration][nats]") {
  cluster_processes c{"ctlgarbage", {}, {"--ack-wait-ms", "30000"}};
  auto& dispatcher = c.start_dispatcher(c.db());
  c.start_worker(worker_flags());

  trellis::detail::nats_config cfg;
  cfg.urls = {c.url()};
  cfg.ns = c.ns();
  cfg.client_name = "garbage-test";
  auto bus = trellis::detail::cluster_bus::connect(cfg);
  REQUIRE(bus);
  auto ask = [&](const std::string& verb, const std::string& bytes) {
    auto reply = (*bus)->request_control(verb, 0, bytes, std::chrono::seconds{30});
    INFO((reply ? std::string{} : to_string(reply.error())) << "\n" << c.logs());
    REQUIRE(reply);
    return trellis::detail::decode_control_reply(*reply);
  };
  auto garbage = ask("status", std::string{"\xc1 not msgpack at all", 20});
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().code() == trellis::errc::malformed_envelope);

  auto future = ask("status", trellis::detail::pack_to_string(
                                  trellis::value(trellis::value::map{{"v", 7}, {"op", "status"}, {"id", "x"}})));
  REQUIRE_FALSE(future);
  CHECK(future.error().code() == trellis::errc::unsupported_version);

  // Workers answer a broken inspect request with an error too.
  auto answers = (*bus)->gather_control("inspect", "garbage", std::chrono::milliseconds{1000});
  REQUIRE(answers);
  CHECK_FALSE(answers->empty());
  for (const auto& a : *answers) {
    auto body = trellis::detail::decode_control_reply(a);
    REQUIRE_FALSE(body);
    CHECK(body.error().code() == trellis::errc::malformed_envelope);
  }

  // So does every process asked for its metrics, the dispatcher included.
  auto metrics_answers = (*bus)->gather_control("metrics", "garbage", std::chrono::milliseconds{1000});
  REQUIRE(metrics_answers);
  CHECK_FALSE(metrics_answers->empty());
  for (const auto& a : *metrics_answers) {
    auto body = trellis::detail::decode_control_reply(a);
    REQUIRE_FALSE(body);
    CHECK(body.error().code() == trellis::errc::malformed_envelope);
  }

  CHECK_FALSE(dispatcher.try_wait());
  auto file = trellis::test::write_file(c.dir(), "add.json", R"({"task": "add", "args": [2, 3]})");
  auto r = c.client({"submit", file, "--wait"});
  CHECK(r.status == 0);
  CHECK(trellis::test::parse_outcome_line(r.last_line())["result"] == 5);
}

TEST_CASE("a waiter that missed the done notice learns the outcome from the dispatcher's status",
          "[integration][nats]") {
  cluster_processes c{"ctlmissed", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  c.start_worker(worker_flags());
  auto file = trellis::test::write_file(c.dir(), "add.json", R"({"task": "add", "args": [20, 22]})");
  auto id = submit_no_wait(c, file);
  REQUIRE(wait_until(
      [&] {
        return json::parse(c.client({"status", id}).last_line())["state"] == "SUCCESS";
      },
      max_test_wait, "the workflow to succeed"));

  // Its done notice went out before anyone listened: it is gone for good.
  trellis::detail::cluster_options opts;
  opts.broker_urls = {c.url()};
  opts.ns = c.ns();
  auto client = trellis::cli::connect_trellis_client(opts, "missed-notice-test");
  REQUIRE(client);
  auto handle = (*client)->find(id);
  REQUIRE(handle);
  CHECK(trellis::cli::report_outcome(*handle) == 0);
}
