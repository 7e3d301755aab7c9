// Retention in a cluster (docs/operations.md "Retention"), against a real
// nats-server, a `trellis-demo dispatcher` and worker processes and the
// generic `trellis` client: `prune` and `forget` over the broker, answered
// by each partition's dispatcher, and a dispatcher's `--result-expires`.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::wait_until;

std::string submit_and_wait(cluster_processes& c, const std::string& file) {
  auto r = c.client({"submit", file, "--wait"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(r.status == 0);
  return trellis::test::parse_outcome_line(r.last_line())["id"].get<std::string>();
}

}  // namespace

TEST_CASE("prune and forget over the broker delete finished workflows in every partition, never unfinished ones",
          "[integration][nats][retention]") {
  cluster_processes c{"ctlretain", {"--partitions", "2"}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db());
  c.start_worker({"--concurrency", "2"});
  auto quick = trellis::test::write_file(c.dir(), "quick.json", R"({"task": "add", "args": [1, 2]})");
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(submit_and_wait(c, quick));
  }
  auto slow = trellis::test::write_file(c.dir(), "slow.json", R"({"task": "sleep_ms", "args": [60000]})");
  auto submitted = c.client({"submit", slow});
  REQUIRE(submitted.status == 0);
  auto running = json::parse(submitted.last_line())["id"].get<std::string>();

  auto forgotten = c.client({"forget", ids[0]});
  CHECK(forgotten.status == 0);
  CHECK(json::parse(forgotten.last_line()) == json{{"id", ids[0]}, {"forgotten", true}});
  CHECK(c.client({"status", ids[0]}).status == 2);
  auto again = c.client({"forget", ids[0]});
  CHECK(again.status == 2);
  CHECK(again.err.find("not_found") != std::string::npos);
  auto refused = c.client({"forget", running});
  CHECK(refused.status == 2);
  CHECK(refused.err.find("not finished") != std::string::npos);

  auto none = c.client({"prune", "--older-than", "1d"});
  CHECK(none.status == 0);
  CHECK(json::parse(none.last_line()) == json{{"pruned", 0}, {"older_than", "1d"}});
  auto all = c.client({"prune", "--older-than", "0"});
  CHECK(all.status == 0);
  CHECK(json::parse(all.last_line()) == json{{"pruned", 3}, {"older_than", "0"}});
  for (std::size_t i = 1; i < ids.size(); ++i) {
    CHECK(c.client({"status", ids[i]}).status == 2);
  }
  auto still = c.client({"status", running});
  REQUIRE(still.status == 0);
  CHECK(json::parse(still.last_line())["state"] == "STARTED");

  auto both = c.client({"prune", "--db", c.db()});
  CHECK(both.status == 2);  // --db and --broker
}

TEST_CASE("a dispatcher's --result-expires deletes finished workflows by itself", "[integration][nats][retention]") {
  cluster_processes c{"ctlexpire", {}, {"--ack-wait-ms", "30000"}};
  c.start_dispatcher(c.db(), {"--result-expires", "1s"});
  c.start_worker({"--concurrency", "2"});
  auto quick = trellis::test::write_file(c.dir(), "quick.json", R"({"task": "add", "args": [1, 2]})");
  auto id = submit_and_wait(c, quick);
  // One second after it finished, at the next sweep (every 5 s).
  REQUIRE(wait_until([&] { return c.client({"status", id}).status == 2; }, std::chrono::seconds{30},
                     "the finished workflow to be pruned"));

  auto metrics = c.client({"metrics"});
  REQUIRE(metrics.status == 0);
  CHECK(metrics.out.find("trellis_pruned_rows_total") != std::string::npos);

  auto bad = c.cli({"dispatcher", "--broker", c.url(), "--db", c.dir().file("other.db"), "--result-expires", "1h30m"});
  CHECK(bad.status == 2);
  CHECK(bad.err.find("result-expires") != std::string::npos);
}
