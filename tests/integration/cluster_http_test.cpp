// The HTTP endpoints of a cluster (docs/operations.md "HTTP"): a dispatcher
// and a worker with --http (their own metrics and readiness, the
// namespace's API), and `trellis dashboard`, which serves the namespace
// from outside it; task events travel over trellis.<ns>.lifecycle. Two
// partitions, so that the list is merged from both dispatchers' stores.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/http_client.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace std::chrono_literals;
using trellis::test::announced_http_port;
using trellis::test::http_client;
using trellis::test::json_of;

namespace {

int wait_for_port(trellis::test::cluster_processes& cluster, trellis::test::child_process& p) {
  std::optional<int> port;
  bool up = trellis::test::wait_until(
      [&] {
        port = announced_http_port(p.stderr_text());
        return port.has_value() || p.try_wait().has_value();
      },
      30s, "the HTTP port in the log");
  INFO(cluster.logs() << p.stderr_text());
  REQUIRE(up);
  REQUIRE(port);
  return *port;
}

}  // namespace

TEST_CASE("a cluster's dispatcher, worker and dashboard serve the namespace over HTTP", "[integration][http][cluster]") {
  trellis::test::cluster_processes cluster{"httpns", {"--partitions", "2"}};
  auto& dispatcher = cluster.start_dispatcher(cluster.db(), {"--http", "127.0.0.1:0"});
  auto& worker = cluster.start_worker({"--http", "127.0.0.1:0", "--concurrency", "2"});
  cluster.wait_running(dispatcher);
  cluster.wait_running(worker);
  auto& dashboard = cluster.start_dashboard({"--http", "127.0.0.1:0"});
  auto dispatcher_port = wait_for_port(cluster, dispatcher);
  auto worker_port = wait_for_port(cluster, worker);
  auto dashboard_port = wait_for_port(cluster, dashboard);

  // Each process's own readiness and metrics.
  auto d = http_client(dispatcher_port);
  auto ready = json_of(d.Get("/readyz"));
  CHECK(ready["ready"] == true);
  CHECK(ready["checks"]["partition_0"]["ok"] == true);
  CHECK(ready["checks"]["partition_1"]["ok"] == true);
  auto w = http_client(worker_port);
  CHECK(json_of(w.Get("/readyz"))["checks"]["broker"]["ok"] == true);

  // Task events from the dashboard's stream, while workflows run.
  trellis::test::event_stream events{dashboard_port};
  REQUIRE(events.wait_connected());

  std::set<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto file = cluster.dir().file("wf" + std::to_string(i) + ".json");
    trellis::test::write_file(file, R"({"chain": [{"task": "add", "args": [)" + std::to_string(i) +
                                        R"(, 1]}, {"task": "mul", "args": [3]}]})");
    auto r = cluster.submit(file, {"--wait"});
    REQUIRE(r.status == 0);
    auto line = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
    ids.insert(line["id"].get<std::string>());
  }
  auto c = http_client(dashboard_port);
  // Every workflow of both partitions, newest first, in pages of three.
  auto first = json_of(c.Get("/api/workflows?limit=3"));
  REQUIRE(first["workflows"].size() == 3);
  REQUIRE(first["next"].is_string());
  auto second = json_of(c.Get(("/api/workflows?limit=3&cursor=" + first["next"].get<std::string>()).c_str()));
  REQUIRE(second["workflows"].size() == 1);
  CHECK(second["next"].is_null());
  std::set<std::string> listed;
  for (const auto& page : {first, second}) {
    for (const auto& wf : page["workflows"]) {
      listed.insert(wf["id"].get<std::string>());
    }
  }
  CHECK(listed == ids);
  // The same through the worker's endpoint, and `trellis list --broker`.
  CHECK(json_of(w.Get("/api/workflows?limit=10"))["workflows"].size() == 4);
  auto list = cluster.client({"list", "--limit", "10"});
  REQUIRE(list.status == 0);
  for (const auto& id : ids) {
    CHECK(list.out.find(id) != std::string::npos);
  }

  auto id = *ids.begin();
  auto graph = json_of(c.Get(("/api/workflows/" + id).c_str()));
  CHECK(graph["state"] == "SUCCESS");
  CHECK(graph["nodes"][1]["task"] == "add");
  CHECK(graph["nodes"][2]["state"] == "SUCCESS");
  auto workers = json_of(c.Get("/api/workers"));
  std::set<std::string> roles;
  for (const auto& p : workers) {
    roles.insert(p["role"].get<std::string>());
  }
  CHECK(roles == std::set<std::string>{"worker", "dispatcher"});
  auto queues = json_of(c.Get("/api/queues"));
  REQUIRE(queues.size() == 1);
  CHECK(queues[0]["queue"] == "default");
  CHECK(queues[0]["succeeded"] == 8);
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("process=\"") != std::string::npos);  // merged from every process

  // A submission through the dashboard, twice with one key: one workflow.
  auto post = c.Post("/api/workflows?key=k-1", R"({"task": "add", "args": [20, 22]})", "application/json");
  REQUIRE(post);
  REQUIRE(post->status == 200);
  auto again = c.Post("/api/workflows?key=k-1", R"({"task": "add", "args": [20, 22]})", "application/json");
  REQUIRE(again);
  CHECK(json_of(again)["id"] == json_of(post)["id"]);
  auto posted = json_of(post)["id"].get<std::string>();
  REQUIRE(trellis::test::wait_until(
      [&] {
        return events.contains(R"("kind":"succeeded","node":null,"task":"","workflow":")" + posted + "\"");
      },
      30s, "the posted workflow's succeeded event"));
  auto text = events.text();
  // The worker's `started` and the dispatcher's events of one workflow.
  for (const char* kind : {"submitted", "started", "succeeded"}) {
    INFO(kind);
    CHECK(text.find(std::string{"\"kind\":\""} + kind + "\",\"node\":" +
                    (std::string{kind} == "submitted" ? "null" : "0")) != std::string::npos);
  }
  CHECK(cluster.stop_all());
}
