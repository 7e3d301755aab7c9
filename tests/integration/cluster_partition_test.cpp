// Cluster mode with partitions and failover, across processes on a real
// nats-server: a dispatcher killed mid-chord and restarted on its store, two
// dispatchers sharing the partitions, a standby taking over from a killed
// one, and a task that kills every worker running it ("worker lost"), also
// while its partition's dispatcher is stopped.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include "trellis/envelope.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/partition.hpp"
#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::child_process;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::count_rows;
using trellis::test::max_test_wait;
using trellis::test::wait_until;

/// A chain of `length` adds: add(0, 1) -> add(_, 1) -> ...; its result is `length`.
json chain_of_adds(int length) {
  json steps = json::array();
  steps.push_back({{"task", "add"}, {"args", {0, 1}}});
  for (int i = 1; i < length; ++i) {
    steps.push_back({{"task", "add"}, {"args", {1}}});
  }
  return {{"chain", steps}};
}

/// Waits for a background `submit --wait` client to end, checks that it
/// exited with `status` and returns the outcome line it printed.
json outcome_of(child_process& client, const cluster_processes& c, int status = 0) {
  auto ended = client.wait_for(max_test_wait);
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text() << "\n" << c.logs());
  REQUIRE(ended);
  CHECK(*ended == status);
  return trellis::test::parse_outcome_line(command_result{0, false, client.stdout_text(), ""}.last_line());
}

/// The workflow id a `submit` without `--wait` printed.
std::string id_of(const command_result& r) {
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(r.status == 0);
  return json::parse(r.last_line()).at("id").get<std::string>();
}

/// Waits for background `submit` clients without `--wait` and returns the
/// workflow ids they were given (each one committed by a dispatcher).
std::vector<std::string> accepted_ids(const std::vector<child_process*>& clients) {
  std::vector<std::string> ids;
  for (auto* client : clients) {
    auto status = client->wait_for(max_test_wait);
    command_result r{status.value_or(-1), !status, client->stdout_text(), client->stderr_text()};
    ids.push_back(id_of(r));
  }
  return ids;
}

/// Waits until every workflow in `ids` is finished in the store at `db`.
void wait_finished(const std::string& db, const std::vector<std::string>& ids, const cluster_processes& c) {
  std::string list;
  for (const auto& id : ids) {
    list += (list.empty() ? "'" : ",'") + id + "'";
  }
  auto sql = "SELECT count(*) FROM workflows WHERE state IN (3, 4) AND id IN (" + list + ")";
  INFO(c.logs());
  REQUIRE(wait_until([&] { return trellis::test::try_count(db, sql.c_str()).value_or(0) == std::int64_t(ids.size()); },
                     max_test_wait, "every workflow to finish"));
}

std::int64_t lines_of(const std::string& path) {
  auto text = trellis::test::read_file(path).value_or("");
  std::int64_t n = 0;
  for (char ch : text) {
    n += ch == '\n' ? 1 : 0;
  }
  return n;
}

/// Messages stored in `stream`, per the server's JetStream report (0 when
/// it does not report the stream).
std::uint64_t stream_messages(const trellis::test::nats_server& server, const std::string& stream) {
  auto report = server.jetstream_report();
  for (const auto& account : report.value("account_details", json::array())) {
    for (const auto& s : account.value("stream_detail", json::array())) {
      if (s.value("name", "") == stream) {
        return s.value("state", json::object()).value("messages", std::uint64_t{0});
      }
    }
  }
  return 0;
}

/// Starts a new worker (with `flags`) in place of each of `workers` that
/// exited, checking that each was killed by SIGKILL (the `crash_worker` task
/// kills its own process); returns how many were replaced.
int replace_killed_workers(cluster_processes& c, std::vector<child_process*>& workers,
                           const std::vector<std::string>& flags) {
  int replaced = 0;
  for (auto*& w : workers) {
    if (auto status = w->try_wait()) {
      CHECK(*status == 128 + SIGKILL);
      ++replaced;
      w = &c.start_worker(flags);
    }
  }
  return replaced;
}

}  // namespace

TEST_CASE(
    "A dispatcher killed with SIGKILL mid-chord and restarted on its store finishes a chord of 1,000 and 20 "
    "chains: the chord body runs once and every header node is recorded once",
    "[integration][nats][recovery]") {
  cluster_processes c{"partkill", {}, {"--ack-wait-ms", "2000"}};
  auto db = c.db();
  auto& first = c.start_dispatcher(db);

  // The header members sleep a little (about 3 s in all on six handler
  // threads), so the chord is still running when the dispatcher dies; the
  // body's effect is a line in a file.
  constexpr int members = 1000;
  auto body_file = c.dir().file("body-effects.txt");
  json header = json::array();
  for (int i = 0; i < members; ++i) {
    header.push_back({{"task", "sleep_ms"}, {"args", {20}}});
  }
  json chord = {
      {"chord",
       {{"header", header}, {"body", {{"task", "touch"}, {"args", {body_file}}, {"options", {{"immutable", true}}}}}}}};
  auto chord_file = trellis::test::write_file(c.dir(), "chord.json", chord.dump());
  auto chain_file = trellis::test::write_file(c.dir(), "chain.json", chain_of_adds(10).dump());

  auto& chord_client = c.start_client(chord_file, {"--wait"});
  // The chains queue up behind the chord's header, so they cross the
  // restart too. Each is committed before the kill: a submission in flight
  // when its dispatcher dies is not answered (docs/cluster.md).
  std::vector<child_process*> chain_clients;
  for (int i = 0; i < 20; ++i) {
    chain_clients.push_back(&c.start_client(chain_file));
  }
  auto chains = accepted_ids(chain_clients);
  // Workers only now: however slow the clients were, the chord has not
  // started, so it is sure to be mid-way when the dispatcher dies.
  for (int i = 0; i < 3; ++i) {
    c.start_worker({"--concurrency", "2", "--fetch-batch", "8"});
  }

  auto done_sql = "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3";
  INFO(c.logs());
  REQUIRE(wait_until([&] { return trellis::test::try_count(db, done_sql).value_or(0) >= 100; }, max_test_wait,
                     "a tenth of the chord's header to succeed"));
  first.kill(SIGKILL);
  CHECK(first.wait() == 128 + SIGKILL);
  auto done_at_kill = count_rows(db, done_sql);
  REQUIRE(done_at_kill < members);  // mid-chord, or the test proves nothing

  // Events of the dead dispatcher wait in JetStream; the new one restores
  // the unfinished workflows from the store and takes them.
  auto& second = c.start_dispatcher(db);
  auto out = outcome_of(chord_client, c);
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 1);  // touch returns the file's line count
  auto chord_id = out["id"].get<std::string>();
  wait_finished(db, chains, c);

  second.kill(SIGTERM);
  auto stopped = second.wait_for(max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);

  CHECK(lines_of(body_file) == 1);
  auto where = " WHERE workflow_id = '" + chord_id + "'";
  CHECK(count_rows(db, "SELECT count(*) FROM nodes" + where + " AND task = 'sleep_ms' AND state = 3") == members);
  CHECK(count_rows(db, "SELECT count(DISTINCT node) FROM nodes" + where) == members + 1);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes" + where) == members + 1);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes" + where + " AND task = 'touch' AND state = 3") == 1);
  CHECK(count_rows(db, "SELECT count(*) FROM attempts") == 0);
  CHECK(count_rows(db, "SELECT count(*) FROM dead_letters") == 0);
  for (const auto& id : chains) {
    INFO("chain " << id);
    CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE state = 3 AND id = '" + id + "'") == 1);
    CHECK(count_rows(db, "SELECT count(*) FROM nodes WHERE state = 3 AND workflow_id = '" + id + "'") == 10);
  }
}

TEST_CASE(
    "Two dispatchers owning one partition each of two complete the workflows of both partitions, each in its "
    "own store",
    "[integration][nats]") {
  cluster_processes c{"parttwo", {"--partitions", "2"}};
  auto db_a = c.dir().file("a.db");
  auto db_b = c.dir().file("b.db");
  c.start_dispatcher(db_a, {"--owns", "0"});
  c.start_dispatcher(db_b, {"--owns", "1"});
  c.start_worker({"--concurrency", "2"});
  c.start_worker({"--concurrency", "2"});
  // With two partitions a dispatcher's store is named after its partition.
  auto store_0 = c.dir().file("a-p0.db");
  auto store_1 = c.dir().file("b-p1.db");

  auto chain_file = trellis::test::write_file(c.dir(), "chain.json", chain_of_adds(10).dump());
  std::vector<child_process*> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(&c.start_client(chain_file, {"--wait"}));
  }
  std::vector<std::string> in_0;
  std::vector<std::string> in_1;
  for (auto* client : clients) {
    auto out = outcome_of(*client, c);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 10);
    auto id = out["id"].get<std::string>();
    (trellis::detail::partition_of(id, 2) == 0 ? in_0 : in_1).push_back(id);
  }
  // 20 random ids leave a partition empty with probability 2^-19.
  CHECK_FALSE(in_0.empty());
  CHECK_FALSE(in_1.empty());
  for (const auto& [store, mine, theirs] : {std::tuple{store_0, in_0, in_1}, std::tuple{store_1, in_1, in_0}}) {
    INFO("store " << store);
    for (const auto& id : mine) {
      CHECK(count_rows(store, "SELECT count(*) FROM workflows WHERE state = 3 AND id = '" + id + "'") == 1);
    }
    for (const auto& id : theirs) {
      CHECK(count_rows(store, "SELECT count(*) FROM workflows WHERE id = '" + id + "'") == 0);
    }
    CHECK(count_rows(store, "SELECT count(*) FROM dead_letters") == 0);
  }

  // The count can come from the environment. Were it ignored (one
  // partition), about half of these would go to partition 0's dispatcher
  // and be refused.
  for (int i = 0; i < 6; ++i) {
    auto env_run = trellis::test::run_command({"/usr/bin/env", "TRELLIS_PARTITIONS=2", TRELLIS_CLI_BIN, "submit",
                                               chain_file, "--broker", c.url(), "--namespace", c.ns(), "--wait"},
                                              c.dir().file("submit-env-" + std::to_string(i)), max_test_wait);
    INFO("stdout:\n" << env_run.out << "\nstderr:\n" << env_run.err);
    CHECK(env_run.status == 0);
  }
  auto bad_env = trellis::test::run_command({"/usr/bin/env", "TRELLIS_PARTITIONS=two", TRELLIS_CLI_BIN, "submit",
                                             chain_file, "--broker", c.url(), "--namespace", c.ns()},
                                            c.dir().file("submit-bad-env"), max_test_wait);
  INFO("stderr:\n" << bad_env.err);
  CHECK(bad_env.status == 2);
  CHECK(bad_env.err.find("TRELLIS_PARTITIONS: 'two' is not a whole number") != std::string::npos);

  // A third dispatcher for a partition already owned exits 3 and says why.
  auto third = trellis::test::run_command({TRELLIS_DEMO_BIN, "dispatcher", "--broker", c.url(), "--namespace", c.ns(),
                                           "--partitions", "2", "--owns", "1", "--db", db_b},
                                          c.dir().file("third"), max_test_wait);
  INFO("stderr:\n" << third.err);
  CHECK(third.status == 3);
  CHECK(third.err.find("in use by another process (pid ") != std::string::npos);
  CHECK(third.err.find(", dispatcher of partition 1;") != std::string::npos);
  CHECK(third.err.find("--standby") != std::string::npos);

  // An owned partition out of range is bad input.
  auto bad = trellis::test::run_command({TRELLIS_DEMO_BIN, "dispatcher", "--broker", c.url(), "--namespace", c.ns(),
                                         "--partitions", "2", "--owns", "2", "--db", c.dir().file("c.db")},
                                        c.dir().file("bad-owns"), max_test_wait);
  INFO("stderr:\n" << bad.err);
  CHECK(bad.status == 2);
  CHECK(bad.err.find("owns: partition 2 is not in [0, 2)") != std::string::npos);
}

TEST_CASE(
    "A standby dispatcher takes over the partitions of an active one killed with SIGKILL, and the running "
    "workflows complete with every node recorded once",
    "[integration][nats][recovery]") {
  cluster_processes c{"partstandby", {"--partitions", "2"}, {"--ack-wait-ms", "2000"}};
  auto db = c.dir().file("cluster.db");
  auto& active = c.start_dispatcher(db);
  c.wait_running(active);
  auto& standby = c.start_dispatcher(db, {"--standby"});
  REQUIRE(wait_until([&] { return standby.stderr_text().find("standing by") != std::string::npos; }, max_test_wait,
                     "the second dispatcher to stand by"));
  // About 1.5 s of work on four handler threads.
  constexpr int members = 200;
  json header = json::array();
  for (int i = 0; i < members; ++i) {
    header.push_back({{"task", "sleep_ms"}, {"args", {30}}});
  }
  json chord = {{"chord", {{"header", header}, {"body", {{"task", "xsum"}}}}}};
  auto chord_file = trellis::test::write_file(c.dir(), "chord.json", chord.dump());
  auto chain_file = trellis::test::write_file(c.dir(), "chain.json", chain_of_adds(10).dump());
  std::vector<child_process*> clients{&c.start_client(chord_file, {"--wait"})};
  std::vector<child_process*> chain_clients;
  for (int i = 0; i < 6; ++i) {
    chain_clients.push_back(&c.start_client(chain_file));
  }
  // Committed before the kill (a submission in flight then is not answered),
  // and before any worker runs, so the chord is mid-way at the kill.
  auto chains = accepted_ids(chain_clients);
  c.start_worker({"--concurrency", "2", "--fetch-batch", "4"});
  c.start_worker({"--concurrency", "2", "--fetch-batch", "4"});

  auto done_sql = "SELECT count(*) FROM nodes WHERE task = 'sleep_ms' AND state = 3";
  auto done = [&] {
    return trellis::test::try_count(c.dir().file("cluster-p0.db"), done_sql).value_or(0) +
           trellis::test::try_count(c.dir().file("cluster-p1.db"), done_sql).value_or(0);
  };
  INFO(c.logs());
  REQUIRE(wait_until([&] { return done() >= 20; }, max_test_wait, "the chord's header to be under way"));
  active.kill(SIGKILL);
  CHECK(active.wait() == 128 + SIGKILL);
  REQUIRE(done() < members);  // mid-chord, or the takeover proves nothing

  auto& chord_client = *clients.front();
  auto out = outcome_of(chord_client, c);
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 30 * members);
  auto chord_id = out["id"].get<std::string>();
  for (const auto& id : chains) {
    auto chain_store = c.dir().file(trellis::detail::partition_of(id, 2) == 0 ? "cluster-p0.db" : "cluster-p1.db");
    wait_finished(chain_store, {id}, c);
    CHECK(count_rows(chain_store, "SELECT count(*) FROM workflows WHERE state = 3 AND id = '" + id + "'") == 1);
    CHECK(count_rows(chain_store, "SELECT count(*) FROM nodes WHERE state = 3 AND workflow_id = '" + id + "'") == 10);
  }
  CHECK(standby.stderr_text().find("serves partition 0 of 2") != std::string::npos);
  CHECK(standby.stderr_text().find("serves partition 1 of 2") != std::string::npos);
  standby.kill(SIGTERM);
  auto stopped = standby.wait_for(max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);

  auto store = c.dir().file(trellis::detail::partition_of(chord_id, 2) == 0 ? "cluster-p0.db" : "cluster-p1.db");
  auto where = " WHERE workflow_id = '" + chord_id + "'";
  CHECK(count_rows(store, "SELECT count(*) FROM nodes" + where + " AND state = 3") == members + 1);
  CHECK(count_rows(store, "SELECT count(DISTINCT node) FROM nodes" + where) == members + 1);
  CHECK(count_rows(store, "SELECT count(*) FROM nodes" + where) == members + 1);
}

TEST_CASE(
    "A task that kills its worker on every delivery ends in the dead-letter store as 'worker lost' after "
    "MaxDeliver deliveries and fails its workflow, while other workflows are unaffected",
    "[integration][nats][recovery]") {
  constexpr int max_deliver = 3;
  cluster_processes c{"partlost", {"--partitions", "2"}};
  auto db = c.dir().file("cluster.db");
  c.start_dispatcher(db);
  // One task at a time per worker, so a dying worker takes only the task
  // that killed it; a short AckWait redelivers it quickly.
  std::vector<std::string> worker_flags{"--concurrency", "1",   "--fetch-batch", "1",
                                        "--ack-wait-ms", "300", "--max-deliver", std::to_string(max_deliver)};
  std::vector<child_process*> workers{&c.start_worker(worker_flags), &c.start_worker(worker_flags)};

  auto crash_file = trellis::test::write_file(c.dir(), "crash.json", R"({"task": "crash_worker"})");
  auto chain_file = trellis::test::write_file(c.dir(), "chain.json", chain_of_adds(10).dump());
  auto& crash_client = c.start_client(crash_file, {"--wait"});
  std::vector<child_process*> others;
  for (int i = 0; i < 6; ++i) {
    others.push_back(&c.start_client(chain_file, {"--wait"}));
  }

  // Replace every worker that dies until the crashing workflow is decided.
  int deaths = 0;
  INFO(c.logs());
  REQUIRE(wait_until(
      [&] {
        deaths += replace_killed_workers(c, workers, worker_flags);
        return crash_client.try_wait().has_value();
      },
      max_test_wait, "the crashing workflow to be decided"));
  auto out = outcome_of(crash_client, c, 1);
  CHECK(out["state"] == "FAILURE");
  CHECK(out["error"]["type"] == "worker_lost");
  auto crash_id = out["id"].get<std::string>();
  // Each delivery that reached a worker killed it; JetStream made exactly MaxDeliver.
  CHECK(deaths >= 1);
  CHECK(deaths <= max_deliver);

  for (auto* client : others) {
    auto chain_out = outcome_of(*client, c);
    CHECK(chain_out["state"] == "SUCCESS");
    CHECK(chain_out["result"] == 10);
  }

  // The dead letter sits in the store of the crashing workflow's partition,
  // with the task message as published; the other partition has none.
  auto p = trellis::detail::partition_of(crash_id, 2);
  auto store = c.dir().file(p == 0 ? "cluster-p0.db" : "cluster-p1.db");
  auto other = c.dir().file(p == 0 ? "cluster-p1.db" : "cluster-p0.db");
  auto letter = trellis::test::only_dead_letter(store);
  CHECK(letter.reason == "worker lost");
  CHECK(letter.workflow_id == crash_id);
  CHECK(letter.node == 0);
  CHECK(letter.task == "crash_worker");
  CHECK(letter.attempts == 1);
  CHECK(letter.error.find("delivered " + std::to_string(max_deliver) + " times") != std::string::npos);
  auto task = trellis::detail::decode(letter.envelope);
  REQUIRE(task);
  CHECK(task->type == trellis::detail::envelope_type::task);
  CHECK(task->id == crash_id + ":0:1");
  CHECK(count_rows(other, "SELECT count(*) FROM dead_letters") == 0);
  CHECK(count_rows(store, "SELECT count(*) FROM attempts WHERE workflow_id = '" + crash_id +
                              "' AND error_type = 'worker_lost'") == 1);

  // Once dead-lettered, the exhausted task is dropped from the task stream.
  trellis::detail::nats_config cfg;
  cfg.urls = {c.url()};
  cfg.ns = c.ns();
  auto bus = trellis::detail::cluster_bus::connect(cfg);
  REQUIRE(bus);
  CHECK(wait_until(
      [&] {
        auto depth = (*bus)->queue_depth(task->queue);
        return depth && *depth == 0;
      },
      max_test_wait, "the lost task to leave the task stream"));
}

TEST_CASE(
    "A task exhausted while its partition's dispatcher is stopped is dead-lettered as 'worker lost' when the "
    "dispatcher starts again, its workflow fails, and nothing is left in the task stream",
    "[integration][nats][recovery]") {
  constexpr int max_deliver = 3;
  cluster_processes c{"partlostdown", {"--partitions", "2"}};
  auto names = trellis::detail::subject_space::make(c.ns());
  REQUIRE(names);
  auto db_a = c.dir().file("a.db");
  auto db_b = c.dir().file("b.db");
  std::vector<child_process*> dispatchers{&c.start_dispatcher(db_a, {"--owns", "0"}),
                                          &c.start_dispatcher(db_b, {"--owns", "1"})};

  auto crash_file = trellis::test::write_file(c.dir(), "crash.json", R"({"task": "crash_worker"})");
  auto crash_id = id_of(c.submit(crash_file));
  auto p = trellis::detail::partition_of(crash_id, 2);
  auto owner_db = p == 0 ? db_a : db_b;
  auto store = c.dir().file(p == 0 ? "a-p0.db" : "b-p1.db");
  auto other = c.dir().file(p == 0 ? "b-p1.db" : "a-p0.db");

  trellis::detail::nats_config cfg;
  cfg.urls = {c.url()};
  cfg.ns = c.ns();
  cfg.declare_streams = false;
  auto bus = trellis::detail::cluster_bus::connect(cfg);
  REQUIRE(bus);
  auto depth = [&]() -> std::uint64_t {
    auto d = (*bus)->queue_depth("default");
    return d ? *d : std::uint64_t{1'000'000};  // unknown: not the awaited value
  };
  INFO(c.logs());
  // The task is published before its dispatcher stops (the submission is
  // answered at the commit, the publish follows).
  REQUIRE(wait_until([&] { return depth() == 1; }, max_test_wait, "the crashing task to be published"));
  dispatchers[p]->kill(SIGTERM);
  auto stopped = dispatchers[p]->wait_for(max_test_wait);
  REQUIRE(stopped);
  CHECK(*stopped == 143);

  // Workers die on every delivery; replace them until JetStream gives up
  // and its advisory is kept in the lost stream.
  std::vector<std::string> worker_flags{"--concurrency", "1",   "--fetch-batch", "1",
                                        "--ack-wait-ms", "300", "--max-deliver", std::to_string(max_deliver)};
  std::vector<child_process*> workers{&c.start_worker(worker_flags), &c.start_worker(worker_flags)};
  int deaths = 0;
  REQUIRE(wait_until(
      [&] {
        deaths += replace_killed_workers(c, workers, worker_flags);
        return stream_messages(c.server(), names->lost_stream()) >= 1;
      },
      max_test_wait, "the MAX_DELIVERIES advisory to be kept in the lost stream"));
  CHECK(deaths >= 1);
  CHECK(deaths <= max_deliver);
  for (auto* w : workers) {
    w->kill(SIGTERM);
    auto status = w->wait_for(max_test_wait);
    REQUIRE(status);
    CHECK((*status == 143 || *status == 128 + SIGKILL));  // one may have taken the task just before
  }
  // Nobody has decided it yet: the owner is down, and the other partition's
  // dispatcher only passes it on.
  CHECK(count_rows(store, "SELECT count(*) FROM workflows WHERE state IN (3, 4) AND id = '" + crash_id + "'") == 0);
  CHECK(depth() == 1);

  // The owner starts again and catches up on the advisory.
  auto& back = c.start_dispatcher(owner_db, {"--owns", std::to_string(p)});
  wait_finished(store, {crash_id}, c);
  CHECK(count_rows(store, "SELECT count(*) FROM workflows WHERE state = 4 AND id = '" + crash_id + "'") == 1);
  auto status = c.client({"status", crash_id});
  INFO("status stdout:\n" << status.out << "\nstatus stderr:\n" << status.err);
  CHECK(status.status == 0);
  CHECK(status.out.find("FAILURE") != std::string::npos);
  CHECK(status.out.find("worker_lost") != std::string::npos);

  auto letter = trellis::test::only_dead_letter(store);
  CHECK(letter.reason == "worker lost");
  CHECK(letter.workflow_id == crash_id);
  CHECK(letter.task == "crash_worker");
  CHECK(letter.attempts == 1);
  CHECK(letter.error.find("delivered " + std::to_string(max_deliver) + " times") != std::string::npos);
  auto task = trellis::detail::decode(letter.envelope);
  REQUIRE(task);
  CHECK(task->id == crash_id + ":0:1");
  CHECK(count_rows(other, "SELECT count(*) FROM dead_letters") == 0);
  CHECK(count_rows(store, "SELECT count(*) FROM attempts WHERE workflow_id = '" + crash_id +
                              "' AND error_type = 'worker_lost'") == 1);

  // The task left the task stream, and both partitions acked the advisory.
  CHECK(wait_until([&] { return depth() == 0; }, max_test_wait, "the lost task to leave the task stream"));
  for (int partition : {0, 1}) {
    auto consumer = names->lost_consumer(partition);
    REQUIRE(consumer);
    INFO(c.server().jetstream_summary());
    CHECK(wait_until([&] { return c.server().consumer_backlog(names->lost_stream(), *consumer) == std::uint64_t{0}; },
                     max_test_wait, ("the advisory to be acked by " + *consumer).c_str()));
  }

  back.kill(SIGTERM);
  auto back_stopped = back.wait_for(max_test_wait);
  REQUIRE(back_stopped);
  CHECK(*back_stopped == 143);
}
