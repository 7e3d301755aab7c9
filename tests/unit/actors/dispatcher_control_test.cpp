// Control requests reach the dispatcher actor through its transport, as they
// do over NATS: the test plays both the client (through the control sink)
// and the workers (through the in-process queues), so it can revoke a
// workflow mid-chain and then deliver its outcome late.

#include "support/dispatcher_harness.hpp"
#include "support/forwarding_transport.hpp"
#include "support/wait_until.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/inproc_transport.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

using namespace trellis;
using namespace trellis::detail;
using namespace std::chrono_literals;

namespace {

/// The in-process transport plus the control seam NATS provides in cluster
/// mode: requests go to the dispatcher's control sink, answers are recorded.
class control_transport final : public test::forwarding_transport {
 public:
  void consume_control(std::function<void(delivery)> sink) override {
    std::lock_guard<std::mutex> guard{mutex_};
    sink_ = std::move(sink);
  }
  void answer_control(const delivery& d, const std::string& reply) override {
    std::lock_guard<std::mutex> guard{mutex_};
    answers_[d.token] = reply;
  }

  /// Sends `request` as token `token` and waits for its decoded answer.
  expected<value> ask(std::uint64_t token, const std::string& request) {
    std::function<void(delivery)> sink;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      sink = sink_;
    }
    REQUIRE(sink);
    sink(delivery{request, token, 1});
    std::string reply;
    REQUIRE(test::wait_until(
        [&] {
          std::lock_guard<std::mutex> guard{mutex_};
          auto i = answers_.find(token);
          if (i == answers_.end()) {
            return false;
          }
          reply = i->second;
          return true;
        },
        test::max_test_wait, "the dispatcher's control answer"));
    return decode_control_reply(reply);
  }

 private:
  std::mutex mutex_;
  std::function<void(delivery)> sink_;
  std::map<std::uint64_t, std::string> answers_;
};

/// The dispatcher with the test standing in for workers and control clients.
using fixture = test::dispatcher_harness<control_transport>;

/// The dispatcher's name in its inspect answer.
void name_dispatcher(dispatcher_config& cfg) { cfg.inspect_identity = value::map{{"name", "test-dispatcher"}}; }

/// An encoded control request.
std::string request(control_op op, const std::string& id = "") {
  control_request r;
  r.op = op;
  r.workflow_id = id;
  return encode(r);
}

}  // namespace

TEST_CASE("a revoked chain publishes no more of its nodes and its late outcome is a duplicate",
          "[unit][actors][dispatcher][control][once]") {
  fixture f{":memory:", name_dispatcher};
  f.submit(chain(signature("a"), signature("b"), signature("c")), "wf-r");
  f.settle();
  auto first = f.take_tasks();
  REQUIRE(first.size() == 1);

  auto answer = f.bus->ask(1, request(control_op::revoke, "wf-r"));
  REQUIRE(answer);
  REQUIRE(answer->is_map());
  CHECK(answer->as_map().at("state") == value("REVOKED"));
  CHECK(answer->as_map().at("error").as_map().at("type") == value("revoked"));
  REQUIRE(f.finished().size() == 1);
  CHECK(f.finished()[0].state == node_state::revoked);
  CHECK(f.revoked() == std::vector<std::string>{"wf-r"});

  // The first step's outcome comes in after the revocation: nothing advances.
  f.report_success(first[0], 1);
  f.settle();
  CHECK(f.take_tasks().empty());
  CHECK(f.stats->total(counter::duplicates) == 1);
  CHECK(f.stats->total(counter::tasks_succeeded) == 0);

  auto status = f.bus->ask(2, request(control_op::status, "wf-r"));
  REQUIRE(status);
  CHECK(status->as_map().at("state") == value("REVOKED"));
  // The step that was out is stored REVOKED; the ones never reached have no row.
  const auto& nodes = status->as_map().at("nodes").as_array();
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].as_map().at("node") == value(first[0].node));
  CHECK(nodes[0].as_map().at("state") == value("REVOKED"));

  auto again = f.bus->ask(3, request(control_op::revoke, "wf-r"));
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == errc::invalid_workflow);
  CHECK(again.error().message().find("already finished as REVOKED") != std::string::npos);
}

/// An encoded request to revoke node `node` of workflow `id`.
std::string revoke_node_request(const std::string& id, std::int32_t node, bool terminate = false) {
  control_request r;
  r.op = control_op::revoke;
  r.workflow_id = id;
  r.node = node;
  r.terminate = terminate;
  return encode(r);
}

TEST_CASE("revoking one running group member names it to the workers and leaves the others running",
          "[unit][actors][dispatcher][control][once]") {
  fixture f{":memory:", name_dispatcher};
  f.submit(group(signature("a"), signature("b")), "wf-g");
  f.settle();
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 2);
  const auto& a = tasks[0].task == "a" ? tasks[0] : tasks[1];
  const auto& b = tasks[0].task == "a" ? tasks[1] : tasks[0];

  auto answer = f.bus->ask(1, revoke_node_request("wf-g", a.node, true));
  REQUIRE(answer);
  CHECK(answer->as_map().at("state") == value("REVOKED"));
  CHECK(answer->as_map().at("node") == value(a.node));
  CHECK(answer->as_map().at("revoked") == value(value::array{value(a.node)}));
  auto notices = f.revoke_notices();
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].workflow_id == "wf-g");
  CHECK(notices[0].nodes == std::vector<std::int32_t>{a.node});
  CHECK(notices[0].terminate);
  CHECK(f.finished().empty());
  CHECK(f.stats->total(counter::tasks_revoked) == 1);

  // The revoked member's late outcome is a duplicate; the other one ends
  // the group, which is REVOKED as its first unsuccessful member is.
  f.report_success(a, 1);
  f.report_success(b, 2);
  REQUIRE(test::wait_until([&] { return f.finished().size() == 1; }, test::max_test_wait, "the group to end"));
  CHECK(f.finished()[0].state == node_state::revoked);
  CHECK(f.stats->total(counter::duplicates) == 1);
  CHECK(f.stats->total(counter::tasks_succeeded) == 1);
}

TEST_CASE("a chain step revoked while it waits is never published, and the chain ends REVOKED",
          "[unit][actors][dispatcher][control]") {
  fixture f{":memory:", name_dispatcher};
  f.submit(chain(signature("a"), signature("b"), signature("c")), "wf-c");
  f.settle();
  auto first = f.take_tasks();
  REQUIRE(first.size() == 1);
  auto b = first[0].node + 1;

  auto answer = f.bus->ask(1, revoke_node_request("wf-c", b));
  REQUIRE(answer);
  CHECK(answer->as_map().at("revoked") == value(value::array{value(b)}));
  CHECK(f.revoke_notices().empty());  // no message of `b` is out: nothing for workers to skip

  f.report_success(first[0], 1);
  REQUIRE(test::wait_until([&] { return f.finished().size() == 1; }, test::max_test_wait, "the chain to end"));
  f.settle();
  CHECK(f.take_tasks().empty());
  CHECK(f.finished()[0].state == node_state::revoked);
  CHECK(f.finished()[0].error.as_map().at("task") == value("b"));

  // Revoking what already finished, or a node the workflow lacks, is refused.
  auto late = f.bus->ask(2, revoke_node_request("wf-c", b));
  REQUIRE_FALSE(late);
  CHECK(late.error().code() == errc::invalid_workflow);
}

TEST_CASE("a node the workflow does not have is not_found", "[unit][actors][dispatcher][control]") {
  fixture f{":memory:", name_dispatcher};
  f.submit(chain(signature("a"), signature("b")), "wf-n");
  f.settle();
  auto answer = f.bus->ask(1, revoke_node_request("wf-n", 99));
  REQUIRE_FALSE(answer);
  CHECK(answer.error().code() == errc::not_found);
  CHECK(answer.error().message().find("has no node 99") != std::string::npos);
}

TEST_CASE("the dispatcher answers status, inspect and bad control requests without touching workflows",
          "[unit][actors][dispatcher][control]") {
  fixture f{":memory:", name_dispatcher};
  f.submit(signature("a"), "wf-s");
  f.settle();

  auto unknown = f.bus->ask(1, request(control_op::status, "nope"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code() == errc::not_found);
  auto unknown_revoke = f.bus->ask(2, request(control_op::revoke, "nope"));
  REQUIRE_FALSE(unknown_revoke);
  CHECK(unknown_revoke.error().code() == errc::not_found);

  auto garbage = f.bus->ask(3, "\xc1");
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().code() == errc::malformed_envelope);
  auto notice = f.bus->ask(4, request(control_op::revoked, "wf-s"));
  REQUIRE_FALSE(notice);
  CHECK(notice.error().code() == errc::malformed_envelope);

  auto inspect = f.bus->ask(5, request(control_op::inspect));
  REQUIRE(inspect);
  const auto& m = inspect->as_map();
  CHECK(m.at("role") == value("dispatcher"));
  CHECK(m.at("name") == value("test-dispatcher"));
  CHECK(m.at("workflows_in_flight") == value(value::array{"wf-s"}));

  auto running = f.bus->ask(6, request(control_op::status, "wf-s"));
  REQUIRE(running);
  CHECK(running->as_map().at("state") == value("STARTED"));
  // None of it changed the workflow: its task is still there to run.
  auto tasks = f.take_tasks();
  REQUIRE(tasks.size() == 1);
  f.report_success(tasks[0], 7);
  f.settle();
  auto done = f.bus->ask(7, request(control_op::status, "wf-s"));
  REQUIRE(done);
  CHECK(done->as_map().at("state") == value("SUCCESS"));
  CHECK(done->as_map().at("result") == value(7));
}
