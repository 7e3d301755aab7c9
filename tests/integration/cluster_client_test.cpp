// The public C++ cluster client (trellis/client.hpp) against a real
// nats-server, a `trellis-demo dispatcher` and a `trellis-demo worker`:
// submit and wait, a failing workflow, idempotent submission by key,
// status, revoke, dead letters and their replay, and `trellis submit --key`.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

#include "trellis/client.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace {

using nlohmann::json;
using trellis::client;
using trellis::client_options;
using trellis::errc;
using trellis::node_state;
using trellis::signature;
using trellis::value;
using trellis::test::cluster_processes;
using trellis::test::max_test_wait;

/// A started cluster: one dispatcher and one worker with two threads.
void start(cluster_processes& c) {
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
}

std::unique_ptr<client> connect(const cluster_processes& c) {
  client_options opts;
  opts.broker_urls = {c.url()};
  opts.ns = c.ns();
  auto made = client::connect(opts);
  INFO((made ? std::string{} : to_string(made.error())));
  REQUIRE(made);
  return std::move(*made);
}

/// One attempt only: a failure is final at once and leaves a dead letter.
trellis::retry_policy no_retries() {
  trellis::retry_policy p;
  p.max_retries = 0;
  return p;
}

}  // namespace

TEST_CASE("client: a submitted chain is waited for, and a failing one gives workflow_failed with its details",
          "[integration][nats][client]") {
  cluster_processes c{"clientwait", {}};
  start(c);
  auto cl = connect(c);

  auto run = cl->submit(trellis::chain(signature{"add", {2, 3}}, signature{"add", {4}}));
  REQUIRE(run);
  CHECK(run->id().size() == 32);
  auto result = run->wait_for(max_test_wait);
  INFO((result ? std::string{} : to_string(result.error())) << "\n" << c.logs());
  REQUIRE(result);
  CHECK(*result == value(9));
  CHECK(run->state() == node_state::success);
  CHECK(run->error_details().is_nil());

  auto failing = cl->submit(signature{"fail", {"boom"}}.retry(no_retries()));
  REQUIRE(failing);
  auto failed = failing->wait_for(max_test_wait);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code() == errc::workflow_failed);
  CHECK(failed.error().message().find("task 'fail' failed") != std::string::npos);
  CHECK(failing->state() == node_state::failure);
  auto details = failing->error_details();
  REQUIRE(details.is_map());
  CHECK(details.as_map().at("task") == value("fail"));
  CHECK(details.as_map().at("message") == value("boom"));

  // A handle found later, on a copy: the same outcome, from the dispatcher.
  auto found = cl->find(failing->id());
  REQUIRE(found);
  auto copy = *found;
  CHECK(copy.state() == node_state::failure);
  CHECK(copy.wait_for(std::chrono::milliseconds{0}).error().code() == errc::workflow_failed);
  CHECK(cl->find("0123456789abcdef0123456789abcdef").error().code() == errc::not_found);
}

TEST_CASE("client: the same key twice gives the same workflow, submitted once, and trellis submit --key agrees",
          "[integration][nats][client]") {
  cluster_processes c{"clientkey", {}};
  start(c);
  auto cl = connect(c);

  auto flow = trellis::chain(signature{"add", {20, 1}}, signature{"add", {21}});
  auto first = cl->submit(flow, std::string{"order-17"});
  REQUIRE(first);
  CHECK(first->id() == trellis::workflow_id_for_key(c.ns(), "order-17"));
  auto again = cl->submit(flow, std::string{"order-17"});
  REQUIRE(again);
  CHECK(again->id() == first->id());
  CHECK(first->wait_for(max_test_wait).value() == value(42));
  CHECK(again->wait_for(max_test_wait).value() == value(42));
  // Another key, or none, is another workflow.
  auto other = cl->submit(flow, std::string{"order-18"});
  REQUIRE(other);
  CHECK(other->id() != first->id());
  REQUIRE(other->wait_for(max_test_wait));

  // Also after it finished, and from the command line.
  auto file = trellis::test::write_file(c.dir(), "chain.json",
                                        R"({"chain": [{"task": "add", "args": [20, 1]}, {"task": "add", "args": [21]}]})");
  auto cli = c.client({"submit", file, "--key", "order-17"});
  REQUIRE(cli.status == 0);
  CHECK(json::parse(cli.last_line())["id"] == first->id());
  auto cli_new = c.client({"submit", file, "--key", "order-19", "--wait"});
  REQUIRE(cli_new.status == 0);
  CHECK(json::parse(cli_new.last_line())["id"] == trellis::workflow_id_for_key(c.ns(), "order-19"));

  // An empty key names no submission: refused, by the client and the CLI.
  auto empty = cl->submit(flow, std::string{});
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == trellis::errc::invalid_workflow);
  auto cli_empty = c.client({"submit", file, "--key", ""});
  CHECK(cli_empty.status == 2);
  CHECK(cli_empty.out.empty());

  // Two keyed workflows (17 and 19) and one more (18): three in the store.
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM workflows") == 3);
  CHECK(trellis::test::count_rows(c.db(), "SELECT count(*) FROM workflows WHERE submit_key = 'order-17'") == 1);
}

TEST_CASE("client: status and revoke of a running workflow, which ends REVOKED", "[integration][nats][client]") {
  cluster_processes c{"clientrevoke", {}, {"--ack-wait-ms", "30000"}};
  start(c);
  auto cl = connect(c);

  auto run = cl->submit(trellis::chain(signature{"sleep_ms", {60000}}, signature{"add", {1, 2}}));
  REQUIRE(run);
  auto doc = cl->status(run->id());
  REQUIRE(doc);
  CHECK(doc->as_map().at("id") == value(run->id()));
  CHECK(doc->as_map().at("state") == value("STARTED"));
  CHECK(run->state() == node_state::started);
  CHECK(run->wait_for(std::chrono::milliseconds{300}).error().code() == errc::timeout);

  trellis::revoke_options what;
  what.terminate = true;
  auto answer = cl->revoke(run->id(), what);
  INFO((answer ? std::string{} : to_string(answer.error())) << "\n" << c.logs());
  REQUIRE(answer);
  CHECK(answer->as_map().at("state") == value("REVOKED"));
  auto waited = run->wait_for(max_test_wait);
  REQUIRE_FALSE(waited);
  CHECK(waited.error().code() == errc::revoked);
  CHECK(run->state() == node_state::revoked);
  CHECK(cl->status(run->id())->as_map().at("state") == value("REVOKED"));
  // Finished: revoking again is refused; an unknown workflow is not found.
  CHECK(cl->revoke(run->id()).error().code() == errc::invalid_workflow);
  CHECK(cl->status("0123456789abcdef0123456789abcdef").error().code() == errc::not_found);
}

TEST_CASE("client: dead letters are listed and replayed", "[integration][nats][client]") {
  cluster_processes c{"clientdlq", {}};
  start(c);
  auto cl = connect(c);

  // Fails once with no retry left: one dead letter. Replayed, attempt 2 succeeds.
  auto run = cl->submit(signature{"flaky", {1}}.retry(no_retries()));
  REQUIRE(run);
  REQUIRE(run->wait_for(max_test_wait).error().code() == errc::workflow_failed);

  auto letters = cl->dead_letters();
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  const auto& letter = (*letters)[0].as_map();
  CHECK(letter.at("workflow_id") == value(run->id()));
  CHECK(letter.at("task") == value("flaky"));
  CHECK(letter.at("replayed") == value(false));

  auto replayed = cl->replay_dead_letter(letter.at("id").as_int());
  REQUIRE(replayed);
  CHECK(replayed->id() == run->id());
  auto result = replayed->wait_for(max_test_wait);
  INFO((result ? std::string{} : to_string(result.error())) << "\n" << c.logs());
  REQUIRE(result);
  CHECK(*result == value(2));
  CHECK(cl->dead_letters()->at(0).as_map().at("replayed") == value(true));
  CHECK(cl->replay_dead_letter(letter.at("id").as_int()).error().code() == errc::invalid_workflow);
  CHECK(cl->replay_dead_letter(99).error().code() == errc::not_found);
}

TEST_CASE("client: connect refuses bad options, naming the field and no secret", "[integration][nats][client]") {
  client_options none;
  CHECK(client::connect(none).error().code() == errc::invalid_config);
  client_options opts;
  opts.broker_urls = {"nats://127.0.0.1:1"};
  opts.password = "hunter2-secret";
  auto no_user = client::connect(opts);
  REQUIRE_FALSE(no_user);
  CHECK(no_user.error().code() == errc::invalid_config);
  CHECK(no_user.error().message().find("hunter2") == std::string::npos);
  opts.password.clear();
  opts.signing_key = "tiny-secret-key";
  auto short_key = client::connect(opts);
  REQUIRE_FALSE(short_key);
  CHECK(short_key.error().code() == errc::invalid_config);
  CHECK(short_key.error().message().find("signing_key") != std::string::npos);
  CHECK(short_key.error().message().find("tiny-secret-key") == std::string::npos);
}

TEST_CASE("client: a key's workflow id is 32 hex digits of SHA-256 over namespace and key", "[integration][client]") {
  // sha256("trellis-submit-key" "7:default" "8:order-17"), first 16 bytes:
  // fixed, so that every client version derives the same id from a key.
  CHECK(trellis::workflow_id_for_key("default", "order-17") == "ab58529f561eb09c4f587d8f3a5b4ff7");
  CHECK(trellis::workflow_id_for_key("default", "order-17") != trellis::workflow_id_for_key("other", "order-17"));
  // Length-prefixed parts: moving a character between them changes the id.
  CHECK(trellis::workflow_id_for_key("ab", "c") != trellis::workflow_id_for_key("a", "bc"));
}
