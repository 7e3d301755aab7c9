// Mixed worker binaries (decision 0022): a task message reaches only a
// worker that registered its task; a task no live worker registers waits in
// the stream, is not dead-lettered, and `trellis inspect` names it; inspect
// lists each worker's tasks. On a real nats-server, with the transport
// itself and with two real worker binaries.

#include "support/cluster_processes.hpp"
#include "support/inspect_lines.hpp"
#include "support/nats_server.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/transport_endpoints.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#if !defined(TRELLIS_EXAMPLE_WORKER_BIN)
#error "TRELLIS_EXAMPLE_WORKER_BIN must name example_04_cluster_worker (tests/CMakeLists.txt sets it)"
#endif

using json = nlohmann::json;
using trellis::detail::outgoing_task;
using trellis::detail::subject_space;
using trellis::test::cluster_processes;
using trellis::test::config_for;
using trellis::test::connect;
using trellis::test::fetch_n;
using trellis::test::max_test_wait;
using trellis::test::wait_until;
using namespace std::chrono_literals;

namespace {

outgoing_task task_named(const std::string& id, const std::string& task) {
  return outgoing_task{id, id, 0, {}, false, task};
}

std::set<std::string> bodies_of(const std::vector<trellis::detail::delivery>& got) {
  std::set<std::string> out;
  for (const auto& d : got) {
    out.insert(d.bytes);
  }
  return out;
}

}  // namespace

TEST_CASE("A worker transport takes only the tasks it registered; the others wait on their own subjects",
          "[integration][nats][mixed]") {
  trellis::test::nats_server server;
  auto base = config_for(server);
  base.task_queues.clear();
  base.all_task_queues = true;
  base.consume_events = false;
  auto for_a = base;
  for_a.client_name = "worker-a";
  for_a.task_names = {"add"};
  auto for_b = base;
  for_b.client_name = "worker-b";
  // A name that is no subject token travels under its hash.
  for_b.task_names = {"mul", "billing.charge"};
  auto a = connect(for_a);
  auto b = connect(for_b);
  auto for_publisher = base;  // a dispatcher's side: no task consumer
  for_publisher.all_task_queues = false;
  auto publisher = connect(for_publisher);

  // One call mixing four tasks, as a dispatcher's batch does.
  std::vector<outgoing_task> batch{task_named("add-1", "add"), task_named("mul-1", "mul"), task_named("add-2", "add"),
                                   task_named("tax-1", "tax"), task_named("charge-1", "billing.charge")};
  REQUIRE(publisher->publish_tasks("default", batch));
  CHECK(batch.empty());

  auto got_a = fetch_n(*a, {}, 2, "worker a to fetch both add tasks");
  CHECK(bodies_of(got_a) == std::set<std::string>{"add-1", "add-2"});
  auto got_b = fetch_n(*b, {}, 2, "worker b to fetch mul and billing.charge");
  CHECK(bodies_of(got_b) == std::set<std::string>{"mul-1", "charge-1"});
  for (const auto& d : got_a) {
    a->ack_task(d);
  }
  for (const auto& d : got_b) {
    b->ack_task(d);
  }
  // Nobody registered `tax`: neither worker gets it, and it stays queued.
  CHECK(a->fetch_tasks({}, 10, 300ms).empty());
  CHECK(b->fetch_tasks({}, 10, 300ms).empty());
  auto census = publisher.bus->queued_tasks();
  REQUIRE(census);
  REQUIRE(census->size() == 1);
  CHECK(census->front().queue == "default");
  CHECK(census->front().task_token == "tax");
  CHECK(census->front().messages == 1);
  auto depth = publisher.bus->queue_depth("default");
  REQUIRE(depth);
  CHECK(*depth == 1);

  // A worker that registers it takes it.
  auto for_c = base;
  for_c.client_name = "worker-c";
  for_c.task_names = {"tax"};
  auto c = connect(for_c);
  auto got_c = fetch_n(*c, {}, 1, "worker c to fetch the waiting tax task");
  CHECK(bodies_of(got_c) == std::set<std::string>{"tax-1"});
}

TEST_CASE(
    "Two worker binaries with disjoint tasks run one chain that alternates between them; a task no live "
    "worker registers waits and inspect names it",
    "[integration][nats][mixed]") {
  cluster_processes c{"mixed", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  // trellis-demo's tasks (add, mul, ...) only.
  c.wait_running(c.start_worker({"--concurrency", "2"}));

  // price_line (example 04) and add (trellis-demo) in turn:
  // 2*300=600, +100=700, 700*3=2100, +1=2101.
  trellis::test::temp_dir dir;
  auto file = dir.file("alternating.json");
  std::ofstream{file} << json{{"chain",
                               {{{"task", "price_line"}, {"args", {2, 300}}},
                                {{"task", "add"}, {"args", {100}}},
                                {{"task", "price_line"}, {"args", {3}}},
                                {{"task", "add"}, {"args", {1}}}}}}
                             .dump();
  auto& client = c.start_client(file, {"--wait"});

  // No live worker registered price_line: the first step waits, and inspect
  // says so next to the demo worker's registered tasks.
  std::vector<json> lines;
  auto unserved_price_line = [&] {
    lines = trellis::test::inspect(c, "300");
    return std::any_of(lines.begin(), lines.end(), [](const json& l) {
      return l.value("role", "") == "unserved" && l.value("task", "") == "price_line" &&
             l.value("queue", "") == "default" && l.value("messages", 0) == 1;
    });
  };
  REQUIRE(wait_until(unserved_price_line, max_test_wait, "inspect to name price_line as unserved"));
  auto demo = std::find_if(lines.begin(), lines.end(), [](const json& l) { return l.value("role", "") == "worker"; });
  REQUIRE(demo != lines.end());
  auto demo_tasks = (*demo)["tasks"].get<std::vector<std::string>>();
  CHECK(std::count(demo_tasks.begin(), demo_tasks.end(), "add") == 1);
  CHECK(std::count(demo_tasks.begin(), demo_tasks.end(), "price_line") == 0);
  // Waiting, not dead-lettered, not finished.
  CHECK(trellis::test::try_count(c.db(), "SELECT count(*) FROM dead_letters").value_or(-1) == 0);
  CHECK_FALSE(client.try_wait());

  // The second binary registers price_line: the chain goes back and forth.
  c.wait_running(c.start_worker_binary(TRELLIS_EXAMPLE_WORKER_BIN, {"--concurrency", "2"}));
  auto status = client.wait_for(max_test_wait);
  INFO("client stdout:\n" << client.stdout_text() << "\nclient stderr:\n" << client.stderr_text() << "\n" << c.logs());
  REQUIRE(status);
  CHECK(*status == 0);
  auto out =
      trellis::test::parse_outcome_line(trellis::test::command_result{0, false, client.stdout_text(), ""}.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 2101);
  CHECK(trellis::test::try_count(c.db(), "SELECT count(*) FROM dead_letters").value_or(-1) == 0);

  // Both workers list their own tasks; nothing waits any more.
  lines = trellis::test::inspect(c, "500");
  std::vector<std::vector<std::string>> registered;
  for (const auto& l : lines) {
    CHECK(l.value("role", "") != "unserved");
    if (l.value("role", "") == "worker") {
      registered.push_back(l["tasks"].get<std::vector<std::string>>());
    }
  }
  REQUIRE(registered.size() == 2);
  auto example = std::find_if(registered.begin(), registered.end(), [](const std::vector<std::string>& t) {
    return std::count(t.begin(), t.end(), "price_line") == 1;
  });
  REQUIRE(example != registered.end());
  CHECK(*example == std::vector<std::string>{"invoice_total", "price_line"});
  CHECK(c.stop_all());
}
