// Retention through the C++ API (docs/operations.md "Retention"):
// `engine_config::result_expires` and `engine::prune` / `engine::forget`
// embedded, and `client::prune` / `client::forget` against a real
// nats-server and a `trellis-demo dispatcher`.

#include "support/cluster_processes.hpp"
#include "support/engine_run.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/client.hpp>
#include <trellis/engine.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using trellis::errc;
using trellis::signature;
using trellis::value;
using trellis::test::temp_dir;

trellis::task_registry demo_tasks() {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  return tasks;
}

signature add(std::int64_t x, std::int64_t y) { return signature("add", value::array{x, y}); }

/// The id of a finished run of `flow`.
std::string finished(trellis::engine& eng, const trellis::canvas& flow) {
  auto h = eng.submit(flow);
  REQUIRE(h);
  REQUIRE(h->wait_for(trellis::test::max_test_wait));
  return h->id();
}

}  // namespace

TEST_CASE("engine::forget and engine::prune delete finished workflows, never unfinished ones",
          "[integration][engine][retention]") {
  temp_dir dir;
  auto cfg = trellis::test::engine_config_for(dir.file("store.db"));
  cfg.result_expires = 0ms;  // only what the calls ask for
  trellis::engine eng{cfg, demo_tasks()};
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(finished(eng, add(i, i)));
  }
  auto later = eng.submit(add(1, 2).countdown(60s));
  REQUIRE(later);

  REQUIRE(eng.forget(ids[0]));
  auto gone = eng.status(ids[0]);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code() == errc::not_found);
  auto again = eng.forget(ids[0]);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == errc::not_found);
  auto unfinished = eng.forget(later->id());
  REQUIRE_FALSE(unfinished);
  CHECK(unfinished.error().code() == errc::invalid_workflow);

  auto none = eng.prune(1h);
  REQUIRE(none);
  CHECK(*none == 0);
  auto both = eng.prune(0ms);
  REQUIRE(both);
  CHECK(*both == 2);
  CHECK(eng.status(later->id()));
  auto negative = eng.prune(-1ms);
  REQUIRE_FALSE(negative);
  CHECK(negative.error().code() == errc::invalid_config);
}

TEST_CASE("engine_config::result_expires: the engine deletes a finished workflow by itself",
          "[integration][engine][retention]") {
  temp_dir dir;
  auto cfg = trellis::test::engine_config_for(dir.file("store.db"));
  cfg.result_expires = 1ms;
  trellis::engine eng{cfg, demo_tasks()};
  auto id = finished(eng, add(2, 3));
  // At the next sweep, within 5 s.
  REQUIRE(trellis::test::wait_until([&] { return !eng.status(id); }, 30s, "the workflow to be pruned"));
  CHECK(eng.metrics_text().find("trellis_pruned_rows_total{queue=\"\",task=\"\"} 2") != std::string::npos);

  auto too_long = trellis::test::engine_config_for(dir.file("other.db"));
  too_long.idempotency_key_expires = trellis::defaults::max_expires + 1ms;
  CHECK_THROWS_AS((trellis::engine{too_long, demo_tasks()}), trellis::setup_error);
}

TEST_CASE("client::prune and client::forget ask the running dispatchers", "[integration][nats][retention]") {
  trellis::test::cluster_processes c{"apiretain", {"--partitions", "2"}, {"--ack-wait-ms", "30000"}};
  c.wait_running(c.start_dispatcher(c.db(), {"--result-expires", "0"}));
  c.wait_running(c.start_worker({"--concurrency", "2"}));
  trellis::client_options opts;
  opts.broker_urls = {c.url()};
  opts.ns = c.ns();
  opts.partitions = 2;
  auto made = trellis::client::connect(opts);
  REQUIRE(made);
  auto& cl = **made;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto h = cl.submit(add(i, 1));
    REQUIRE(h);
    REQUIRE(h->wait_for(trellis::test::max_test_wait));
    ids.push_back(h->id());
  }
  REQUIRE(cl.forget(ids[0]));
  auto gone = cl.status(ids[0]);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code() == errc::not_found);
  auto pruned = cl.prune(0ms);
  REQUIRE(pruned);
  CHECK(*pruned == 2);
  CHECK(cl.prune(trellis::defaults::max_expires + 1ms).error().code() == errc::invalid_config);
}
