// Poison messages on an unsigned cluster (the default): forged pack headers
// and frames on the task and event subjects. Each is dead-lettered with its
// reason while the worker and the dispatcher keep running; before the pack
// headers were range-checked, one such message aborted every worker (or the
// dispatcher) and, still in its stream, every restarted one.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "support/chain_check.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/raw_nats.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"

namespace {

using nlohmann::json;
using trellis::test::check_chain_runs;
using trellis::test::cluster_processes;

}  // namespace

TEST_CASE(
    "Forged pack headers and frames on task and event subjects are dead-lettered as malformed_envelope while "
    "the worker and dispatcher keep running",
    "[integration][nats][poison]") {
  cluster_processes c{"poison", {}};
  auto& dispatcher = c.start_dispatcher(c.db());
  auto& worker = c.start_worker({"--concurrency", "2"});
  c.wait_running(dispatcher);
  c.wait_running(worker);

  trellis::test::raw_nats raw{c.url()};
  // On the subject of a task the worker registers: only those reach it.
  const std::string tasks = "trellis.poison.task.default.add";
  const std::string events = "trellis.poison.event.0";
  struct poison {
    std::string subject, header, value, body;
  };
  // The reproductions of the report first, then other shapes of the same lie.
  const poison messages[] = {
      {tasks, "Trellis-Task-Pack", "99999999999999999999999", ""},
      {events, "Trellis-Event-Pack", "-1", ""},
      {tasks, "Trellis-Task-Pack", "4294967296", std::string(64, '\0')},
      {events, "Trellis-Event-Pack", "2", std::string("\x05\x00\x00\x00hello", 9)},
      {tasks, "Trellis-Task-Pack", "1", std::string("\xff\xff\xff\xff", 4)},
      {events, "Trellis-Event-Pack", " 1", std::string("\x00\x00\x00\x00", 4)},
  };
  for (const auto& m : messages) {
    REQUIRE(raw.publish_stored(m.subject, m.body, {{m.header, m.value}}) == NATS_OK);
  }
  const auto expected = static_cast<std::int64_t>(std::size(messages));
  REQUIRE(trellis::test::wait_until(
      [&] {
        return trellis::test::try_count(c.db(), "SELECT count(*) FROM dead_letters").value_or(0) >= expected ||
               worker.try_wait() || dispatcher.try_wait();
      },
      trellis::test::max_test_wait, "every poison message dead-lettered"));
  INFO(c.logs());
  REQUIRE_FALSE(worker.try_wait());
  REQUIRE_FALSE(dispatcher.try_wait());
  auto store = trellis::test::open_store(c.db());
  auto letters = store->dead_letters(true);
  REQUIRE(letters);
  CHECK(letters->size() == std::size(messages));
  for (const auto& d : *letters) {
    INFO(d.reason << ": " << d.error);
    CHECK(d.reason == "malformed_envelope");
    CHECK_THAT(d.error, Catch::Contains("pack"));
  }
  check_chain_runs(c);
}
