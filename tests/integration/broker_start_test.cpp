// Workers and dispatchers started before their broker: they keep trying for
// --broker-wait-ms (saying so once on stderr), then serve; past the bound,
// or with 0, they exit 4 (broker_unavailable). A real nats-server, stopped
// and started by PID on one port.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/nats_server.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <string>

using trellis::test::cluster_processes;
using trellis::test::max_test_wait;
using trellis::test::wait_until;
using namespace std::chrono_literals;

TEST_CASE("A worker and a dispatcher started before the broker wait for it, then run a workflow",
          "[integration][nats][broker_start]") {
  trellis::test::nats_server server;
  server.stop();  // the port and the store stay; nothing answers on it now
  auto c = cluster_processes::on_broker(server.url(), "early", {}, {"--broker-wait-ms", "60000"});
  auto& dispatcher = c.start_dispatcher(c.db());
  auto& worker = c.start_worker({"--concurrency", "2"});
  auto waiting = [](trellis::test::child_process& p) {
    return p.try_wait() || p.stderr_text().find("trying again for up to 60 s") != std::string::npos;
  };
  REQUIRE(wait_until([&] { return waiting(dispatcher) && waiting(worker); }, max_test_wait,
                     "both processes to say they wait for the broker"));
  INFO(c.logs());
  REQUIRE_FALSE(dispatcher.try_wait());
  REQUIRE_FALSE(worker.try_wait());

  server.start();
  c.wait_running(dispatcher);
  c.wait_running(worker);
  trellis::test::temp_dir dir;
  auto file = dir.file("chain.json");
  std::ofstream{file} << R"({"chain":[{"task":"add","args":[2,2]},{"task":"add","args":[3]}]})";
  auto r = c.submit(file, {"--wait"});
  INFO(r.out << r.err << c.logs());
  CHECK(r.status == 0);
  CHECK(r.out.find("\"state\":\"SUCCESS\",\"result\":7") != std::string::npos);
  CHECK(c.stop_all());
}

TEST_CASE("Without a broker, a worker exits 4 at once with --broker-wait-ms 0 and after the bound otherwise",
          "[integration][nats][broker_start]") {
  trellis::test::nats_server server;
  server.stop();
  trellis::test::temp_dir dir;
  auto once = trellis::test::run_command(
      {TRELLIS_DEMO_BIN, "worker", "--broker", server.url(), "--broker-wait-ms", "0"}, dir.file("once"), max_test_wait);
  INFO(once.err);
  CHECK(once.status == 4);
  CHECK(once.out.empty());
  CHECK(once.err.find("trying again") == std::string::npos);
  CHECK(once.err.find("broker_unavailable") != std::string::npos);

  auto started = std::chrono::steady_clock::now();
  auto bounded = trellis::test::run_command(
      {TRELLIS_DEMO_BIN, "worker", "--broker", server.url(), "--broker-wait-ms", "1500"}, dir.file("bounded"),
      max_test_wait);
  auto took = std::chrono::steady_clock::now() - started;
  INFO(bounded.err);
  CHECK(bounded.status == 4);
  CHECK(bounded.out.empty());
  CHECK(bounded.err.find("trying again for up to 1 s (--broker-wait-ms)") != std::string::npos);
  CHECK(took >= 1500ms);  // it kept trying for the bound
}
