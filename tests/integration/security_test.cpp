// Cluster security against a real nats-server: user/password, token and TLS
// configured through the CLI's flags, environment and config file; refused
// logins that exit 4 without printing the secret; HMAC-signed clusters whose
// dispatcher and workers dead-letter unsigned and badly signed messages.

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/chain_check.hpp"
#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/envelopes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/tls_certs.hpp"
#include "support/wait_until.hpp"
#include "trellis/envelope.hpp"
#include "trellis/signing.hpp"
#include "trellis/transport/nats_transport.hpp"

namespace {

using nlohmann::json;
using trellis::test::check_chain_runs;
using trellis::test::child_process;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::nats_server;
using trellis::test::nats_server_options;
using trellis::test::temp_dir;

const std::string password = "correct-horse-battery";
const std::string wrong_password = "wrong-donkey-staple";
const std::string token = "s3cr3t-token-for-tests";
const std::string signing_key = "trellis-test-signing-key-0123456789abcdef";

/// Starts the cluster's dispatcher and a worker with two handler threads.
child_process& start_cluster(cluster_processes& c) {
  c.start_dispatcher(c.db());
  return c.start_worker({"--concurrency", "2"});
}

std::string chain_file(const temp_dir& dir) {
  json chain = {{"chain", {{{"task", "add"}, {"args", {2, 2}}}, {{"task", "add"}, {"args", {3}}}}}};
  return trellis::test::write_file(dir, "chain.json", chain.dump());
}

/// Server options with `config` as nats-server's config file.
nats_server_options with_config(std::string config) {
  nats_server_options o;
  o.config_text = std::move(config);
  return o;
}

std::string user_config() {
  return "authorization {\n  users: [ { user: alice, password: \"" + password + "\" } ]\n}\n";
}

}  // namespace

TEST_CASE(
    "A wrong NATS password makes worker, dispatcher and submit exit 4 saying authorization violation, "
    "without the password",
    "[integration][nats]") {
  nats_server server{with_config(user_config())};
  temp_dir dir;
  auto wrong = trellis::test::write_file(dir, "wrong-password", wrong_password + "\n");
  auto workflow = chain_file(dir);
  std::vector<std::vector<std::string>> commands{
      {TRELLIS_DEMO_BIN, "worker"},
      {TRELLIS_DEMO_BIN, "dispatcher", "--db", dir.file("d.db")},
      {TRELLIS_CLI_BIN, "submit", workflow, "--wait"},
  };
  for (auto argv : commands) {
    argv.insert(argv.end(), {"--broker", server.url(), "--user", "alice", "--password-file", wrong});
    INFO(argv[1]);
    // Bounded well below the client's 30 s submit timeout: a refused login
    // must not be retried.
    auto r = trellis::test::run_command(argv, dir.file(argv[1]), std::chrono::seconds{20});
    INFO("stderr:\n" << r.err);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("authorization violation"));
    CHECK_THAT(r.err, Catch::Contains("'alice'"));
    CHECK(r.err.find(wrong_password) == std::string::npos);
    CHECK(r.out.find(wrong_password) == std::string::npos);
  }

  // The same password through TRELLIS_NATS_PASSWORD: refused the same way.
  auto r = trellis::test::run_command(
      {TRELLIS_CLI_BIN, "submit", workflow, "--broker", server.url(), "--user", "alice"}, dir.file("submit-env"),
      std::chrono::seconds{20}, {"TRELLIS_NATS_PASSWORD=" + wrong_password});
  CHECK(r.status == 4);
  CHECK(r.err.find(wrong_password) == std::string::npos);

  // A password on the command line is not a flag at all (it would show in ps).
  r = trellis::test::run_command(
      {TRELLIS_CLI_BIN, "submit", workflow, "--broker", server.url(), "--password", password}, dir.file("submit-flag"),
      std::chrono::seconds{20});
  CHECK(r.status == 2);
}

TEST_CASE("User and password from the environment run a workflow end to end", "[integration][nats]") {
  cluster_processes c{
      "secenv", {}, {}, with_config(user_config()), {"TRELLIS_NATS_USER=alice", "TRELLIS_NATS_PASSWORD=" + password}};
  start_cluster(c);
  check_chain_runs(c);
}

TEST_CASE("Token authentication from a file runs a workflow end to end", "[integration][nats]") {
  // The token file lives outside the cluster, which needs it to start.
  temp_dir files;
  auto token_file = trellis::test::write_file(files, "token", token + "\n");
  cluster_processes c{
      "sectoken", {"--token-file", token_file}, {}, with_config("authorization { token: \"" + token + "\" }\n")};
  start_cluster(c);
  check_chain_runs(c);

  auto wrong = trellis::test::write_file(files, "wrong-token", "not-the-token\n");
  auto r = trellis::test::run_command(
      {TRELLIS_CLI_BIN, "submit", chain_file(c.dir()), "--broker", c.url(), "--token-file", wrong},
      c.dir().file("submit-wrong"), std::chrono::seconds{20});
  CHECK(r.status == 4);
  CHECK_THAT(r.err, Catch::Contains("authorization violation"));
  CHECK(r.err.find("not-the-token") == std::string::npos);
}

TEST_CASE(
    "TLS with the cluster's CA runs a workflow end to end, and a client certificate when the server "
    "verifies clients",
    "[integration][nats]") {
  temp_dir certs;
  auto tls = trellis::test::make_tls_files(certs);
  SECTION("server certificate checked against --tls-ca") {
    cluster_processes c{"sectls", {"--tls-ca", tls.ca}, {}, with_config(tls.server_config())};
    start_cluster(c);
    check_chain_runs(c);

    // A CA that did not sign the server's certificate: refused, exit 4.
    auto r = trellis::test::run_command(
        {TRELLIS_CLI_BIN, "submit", chain_file(c.dir()), "--broker", c.url(), "--tls-ca", tls.client_cert},
        c.dir().file("submit-wrong-ca"), std::chrono::seconds{20});
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("SSL"));
  }
  SECTION("mutual TLS with --tls-cert and --tls-key") {
    cluster_processes c{"secmtls",
                        {"--tls-ca", tls.ca, "--tls-cert", tls.client_cert, "--tls-key", tls.client_key},
                        {},
                        with_config(tls.server_config(true))};
    start_cluster(c);
    check_chain_runs(c);

    auto r = trellis::test::run_command(
        {TRELLIS_CLI_BIN, "submit", chain_file(c.dir()), "--broker", c.url(), "--tls-ca", tls.ca},
        c.dir().file("submit-no-cert"), std::chrono::seconds{20});
    CHECK(r.status == 4);
  }
}

TEST_CASE(
    "A signed cluster runs workflows and dead-letters unsigned and badly signed messages while its "
    "worker keeps running",
    "[integration][nats]") {
  temp_dir files;
  auto key_file = trellis::test::write_file(files, "signing.key", signing_key + "\n");
  cluster_processes c{"signed", {}, {}, {}, {"TRELLIS_SIGNING_KEY_FILE=" + key_file}};
  auto& worker = start_cluster(c);
  check_chain_runs(c);

  // Task messages published straight onto the task subject: one unsigned,
  // one signed with another key.
  using namespace trellis::detail;
  auto bytes_of = [](const std::string& id) {
    auto e = trellis::test::task_envelope(id, {"forged", 0, 1, "add"}, "default");
    e.args = {trellis::value(std::int64_t{1}), trellis::value(std::int64_t{2})};
    return encode(e);
  };
  auto unsigned_bytes = bytes_of("forged:0:1");
  auto forged_bytes = bytes_of("forged:0:2");
  nats_config plain;
  plain.urls = {c.url()};
  plain.ns = "signed";
  plain.client_name = "forger";
  auto unsigned_bus = nats_transport::connect(plain);
  REQUIRE(unsigned_bus);
  std::vector<outgoing_task> one{outgoing_task{"forged:0:1", unsigned_bytes, 0, {}, false, "add"}};
  REQUIRE((*unsigned_bus)->publish_tasks("default", one));
  auto other_key = plain;
  other_key.security.signer = std::make_shared<const message_signer>(std::string(40, 'x'));
  auto forged_bus = nats_transport::connect(other_key);
  REQUIRE(forged_bus);
  std::vector<outgoing_task> two{outgoing_task{"forged:0:2", forged_bytes, 0, {}, false, "add"}};
  REQUIRE((*forged_bus)->publish_tasks("default", two));
  // And an unsigned outcome event straight onto the event stream.
  auto event = trellis::test::outcome_envelope("forged:0:3:out", {"forged", 0, 3, "add"}, outcome_status::success,
                                               trellis::value(std::int64_t{1}), "", "");
  auto event_bytes = encode(event);
  REQUIRE((*unsigned_bus)->publish_events({outgoing_event{0, event_bytes}}));

  REQUIRE(trellis::test::wait_until(
      [&] { return trellis::test::try_count(c.db(), "SELECT count(*) FROM dead_letters").value_or(0) >= 3; },
      trellis::test::max_test_wait, "three dead letters"));
  auto store = trellis::test::open_store(c.db());
  auto letters = store->dead_letters(true);
  REQUIRE(letters);
  REQUIRE(letters->size() == 3);
  std::map<std::string, std::vector<std::string>> by_reason;
  for (const auto& d : *letters) {
    INFO(d.reason << ": " << d.error);
    CHECK(d.node == -1);
    by_reason[d.reason].push_back(d.envelope);
  }
  REQUIRE(by_reason["unsigned_message"].size() == 2);
  REQUIRE(by_reason["bad_signature"].size() == 1);
  CHECK(by_reason["bad_signature"][0] == forged_bytes);
  auto& unsigned_letters = by_reason["unsigned_message"];
  CHECK(std::count(unsigned_letters.begin(), unsigned_letters.end(), unsigned_bytes) == 1);
  CHECK(std::count(unsigned_letters.begin(), unsigned_letters.end(), event_bytes) == 1);

  // The worker still runs and the cluster still works.
  CHECK_FALSE(worker.try_wait());
  check_chain_runs(c);

  // A client without the key is answered with the reason and exit 2.
  auto r = trellis::test::run_command(
      {TRELLIS_CLI_BIN, "submit", chain_file(c.dir()), "--broker", c.url(), "--namespace", "signed"},
      c.dir().file("submit-unsigned"), std::chrono::seconds{40});
  INFO("stderr:\n" << r.err);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("unsigned_message"));
}

TEST_CASE("Cluster settings take a flag over the environment over the config file, and a bad config file exits 2",
          "[integration][nats]") {
  nats_server server;
  temp_dir dir;
  const std::string dead_broker = "nats://127.0.0.1:1";
  // Every process reads the namespace and the store from the file; its
  // broker is one where nothing listens.
  auto config = trellis::test::write_file(
      dir, "trellis.toml",
      "broker = \"" + dead_broker + "\"\nnamespace = \"fromfile\"\ndb = \"" + dir.file("dispatcher.db") + "\"\n");
  // Dispatcher: the flag's broker wins over the file's.
  child_process dispatcher{{TRELLIS_DEMO_BIN, "dispatcher", "--config", config, "--broker", server.url()},
                           dir.file("dispatcher.out"),
                           dir.file("dispatcher.err")};
  // Worker: the environment's broker wins over the file's (named by TRELLIS_CONFIG).
  child_process worker{{TRELLIS_DEMO_BIN, "worker"},
                       dir.file("worker.out"),
                       dir.file("worker.err"),
                       {"TRELLIS_CONFIG=" + config, "TRELLIS_BROKER=" + server.url()}};
  // Client: the flag's broker wins over the environment's.
  auto r = trellis::test::run_command(
      {TRELLIS_CLI_BIN, "submit", chain_file(dir), "--config", config, "--broker", server.url(), "--wait"},
      dir.file("submit"), trellis::test::max_test_wait, {"TRELLIS_BROKER=" + dead_broker});
  INFO("stdout:\n"
       << r.out << "\nstderr:\n"
       << r.err << "\ndispatcher:\n"
       << dispatcher.stderr_text() << "\nworker:\n"
       << worker.stderr_text());
  REQUIRE(r.status == 0);
  CHECK(trellis::test::parse_outcome_line(r.last_line())["result"] == 7);
  // The file's namespace was used: the dispatcher's store holds the workflow.
  CHECK(trellis::test::try_count(dir.file("dispatcher.db"), "SELECT count(*) FROM workflows").value_or(0) == 1);

  auto bad = trellis::test::write_file(dir, "bad.toml", "broker = \"" + server.url() + "\"\nbroker = \"x\"\n");
  auto refused = trellis::test::run_command({TRELLIS_CLI_BIN, "submit", chain_file(dir), "--config", bad},
                                            dir.file("submit-bad"), std::chrono::seconds{20});
  CHECK(refused.status == 2);
  CHECK_THAT(refused.err, Catch::Contains("line 2: broker is given twice"));
}
