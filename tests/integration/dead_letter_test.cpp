// The dead-letter store, through the C++ API: which failures land there, with
// which reason and attempt count, and that they skip retries when retrying
// cannot help. The store is read after the engine has shut down, except
// where `engine::dead_letters()` reads it from the running engine.

#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>
#include <trellis/engine.hpp>
#include <trellis/store/store_reports.hpp>

#include <catch2/catch.hpp>

#include <atomic>
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

trellis::engine_config config(const std::string& store_path) {
  trellis::engine_config cfg;
  cfg.store_path = store_path;
  cfg.jitter_seed = 7;
  return cfg;
}

/// Runs `flow` to completion on a fresh engine over `db`, which must fail it;
/// returns the workflow id once the engine has shut down.
std::string run_failing(const std::string& db, trellis::task_registry tasks, const trellis::canvas& flow) {
  trellis::engine eng{config(db), std::move(tasks)};
  auto h = eng.submit(flow);
  REQUIRE(h);
  auto r = h->wait_for(trellis::test::max_test_wait);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::workflow_failed);
  return h->id();
}

}  // namespace

TEST_CASE("a handler that rejects its input is dead-lettered as bad_arguments without retries", "[integration][dlq]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto calls = std::make_shared<std::atomic<int>>(0);
  trellis::task_registry tasks;
  tasks
      .add("ship",
           [calls](trellis::task_context&, std::string order) -> std::string {
             ++*calls;
             throw trellis::task_rejected("order " + order + " has no shipping address");
           })
      .retry(trellis::retry_policy::fixed(5, 1ms));  // retries allowed, and must not be used

  auto id = run_failing(db, std::move(tasks), signature("ship", {"A-17"}));

  CHECK(calls->load() == 1);
  auto d = trellis::test::only_dead_letter(db);
  CHECK(d.reason == "bad_arguments");
  CHECK(d.task == "ship");
  CHECK(d.workflow_id == id);
  CHECK(d.node == 0);
  CHECK(d.attempts == 1);
  CHECK(d.error.find("order A-17 has no shipping address") != std::string::npos);
  CHECK_FALSE(d.envelope.empty());
  auto attempts = trellis::test::open_store(db)->attempts_of(id);
  REQUIRE(attempts);
  CHECK(attempts->size() == 1);
}

TEST_CASE("a task called with the wrong number of arguments is dead-lettered as bad_arguments", "[integration][dlq]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);

  auto id = run_failing(db, std::move(tasks), signature("add", {1, 2, 3}).retry(trellis::retry_policy::fixed(3, 1ms)));

  auto d = trellis::test::only_dead_letter(db);
  CHECK(d.reason == "bad_arguments");
  CHECK(d.task == "add");
  CHECK(d.workflow_id == id);
  CHECK(d.attempts == 1);
  CHECK(d.error.find("add takes 2 argument(s) (x, y), got 3 positional") != std::string::npos);
}

TEST_CASE("a step whose retries run out is dead-lettered as task_failed after max_retries + 1 attempts",
          "[integration][dlq]") {
  constexpr int max_retries = 2;
  temp_dir dir;
  auto db = dir.file("store.db");
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);

  auto id =
      run_failing(db, std::move(tasks), signature("flaky", {10}).retry(trellis::retry_policy::fixed(max_retries, 1ms)));

  auto d = trellis::test::only_dead_letter(db);
  CHECK(d.reason == "task_failed");
  CHECK(d.task == "flaky");
  CHECK(d.workflow_id == id);
  CHECK(d.attempts == max_retries + 1);
  CHECK(d.error.find("attempt 3 of 10") != std::string::npos);
  auto attempts = trellis::test::open_store(db)->attempts_of(id);
  REQUIRE(attempts);
  CHECK(attempts->size() == static_cast<std::size_t>(max_retries + 1));
}

TEST_CASE("replaying a dead letter id the store does not hold fails with not_found", "[integration][dlq]") {
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  trellis::engine eng{config(":memory:"), std::move(tasks)};

  auto h = eng.replay_dead_letter(9999);

  REQUIRE_FALSE(h);
  CHECK(h.error().code() == errc::not_found);
  CHECK(h.error().message().find("9999") != std::string::npos);
}

TEST_CASE("a dead letter is replayed once; replaying it again is refused and runs nothing", "[integration][dlq]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto tasks = [calls] {
    trellis::task_registry t;
    t.add("charge", [calls](trellis::task_context& ctx) -> std::int64_t {
      ++*calls;
      if (ctx.attempt() == 1) {
        throw std::runtime_error("gateway down");
      }
      return ctx.attempt();
    });
    return t;
  };
  run_failing(db, tasks(), signature("charge"));
  auto letter = trellis::test::only_dead_letter(db);

  trellis::engine eng{config(db), tasks()};
  auto first = eng.replay_dead_letter(letter.id);
  REQUIRE(first);
  auto r = first->wait_for(trellis::test::max_test_wait);
  REQUIRE(r);
  CHECK(*r == value(2));  // the replay is attempt 2: attempt numbers keep counting

  auto again = eng.replay_dead_letter(letter.id);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == errc::invalid_workflow);
  CHECK(again.error().message().find("already replayed") != std::string::npos);
  CHECK(calls->load() == 2);
}

TEST_CASE("a running engine lists its dead letters as dlq list does, and a replayed one shows replayed",
          "[integration][dlq]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto gateway_up = std::make_shared<std::atomic<bool>>(false);
  trellis::task_registry tasks;
  tasks.add("charge", [gateway_up](trellis::task_context&) -> std::string {
    if (!*gateway_up) {
      throw std::runtime_error("gateway down");
    }
    return "charged";
  });
  tasks.add("ok", [](trellis::task_context&) { return true; });
  trellis::value::array listed;
  {
    trellis::engine eng{config(db), std::move(tasks)};
    auto none = eng.dead_letters();
    REQUIRE(none);
    CHECK(none->empty());

    auto fine = eng.submit(signature("ok"));
    auto failing = eng.submit(signature("charge"));
    REQUIRE(fine);
    REQUIRE(failing);
    REQUIRE(fine->wait_for(trellis::test::max_test_wait));
    REQUIRE_FALSE(failing->wait_for(trellis::test::max_test_wait));

    auto letters = eng.dead_letters();
    REQUIRE(letters);
    REQUIRE(letters->size() == 1);
    const auto& row = letters->front().as_map();
    CHECK(row.at("workflow_id") == value(failing->id()));
    CHECK(row.at("task") == value("charge"));
    CHECK(row.at("reason") == value("task_failed"));
    CHECK(row.at("error").as_string().find("gateway down") != std::string::npos);
    CHECK(row.at("replayed") == value(false));

    *gateway_up = true;
    auto replayed = eng.replay_dead_letter(row.at("id").as_int());
    REQUIRE(replayed);
    CHECK(replayed->id() == failing->id());
    auto r = replayed->wait_for(trellis::test::max_test_wait);
    REQUIRE(r);
    CHECK(*r == value("charged"));

    auto after = eng.dead_letters();
    REQUIRE(after);
    REQUIRE(after->size() == 1);
    CHECK(after->front().as_map().at("replayed") == value(true));
    listed = std::move(*after);

    eng.shutdown();
    auto stopped = eng.dead_letters();
    REQUIRE_FALSE(stopped);
    CHECK(stopped.error().code() == errc::shutting_down);
  }
  // The same rows `trellis dlq list --db` prints from the file.
  auto from_file = trellis::detail::dead_letter_rows(*trellis::test::open_store(db));
  REQUIRE(from_file);
  CHECK(*from_file == listed);
}

TEST_CASE("an in-memory engine lists its dead letters too", "[integration][dlq]") {
  trellis::task_registry tasks;
  tasks.add("reject", [](trellis::task_context&) -> bool { throw trellis::task_rejected("never valid"); });
  trellis::engine eng{config(":memory:"), std::move(tasks)};
  auto h = eng.submit(signature("reject"));
  REQUIRE(h);
  REQUIRE_FALSE(h->wait_for(trellis::test::max_test_wait));

  auto letters = eng.dead_letters();

  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  CHECK(letters->front().as_map().at("reason") == value("bad_arguments"));
  CHECK(letters->front().as_map().at("workflow_id") == value(h->id()));
}
