#include "trellis/store/sqlite_store.hpp"

#include "support/files.hpp"
#include "support/temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

using trellis::errc;
using trellis::node_state;
using trellis::setup_error;
using trellis::value;
using trellis::detail::attempt_record;
using trellis::detail::dead_letter_record;
using trellis::detail::node_record;
using trellis::detail::sqlite_store;
using trellis::detail::store_options;
using trellis::detail::workflow_record;
using trellis::test::temp_dir;

namespace {

/// A second, raw connection to a store file: what another process would hold.
class raw_connection {
 public:
  explicit raw_connection(const std::string& path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_close_v2(db_);
      throw std::runtime_error("raw open of " + path + " failed");
    }
  }
  ~raw_connection() { sqlite3_close_v2(db_); }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  void exec(const std::string& sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
    std::string text = message != nullptr ? message : "";
    sqlite3_free(message);
    if (rc != SQLITE_OK) {
      throw std::runtime_error("raw exec of '" + sql + "' failed: " + text);
    }
  }

  std::string query_text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("raw prepare of '" + sql + "' failed");
    }
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(stmt, 0);
      out = p != nullptr ? reinterpret_cast<const char*>(p) : "";
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

/// The setup_error that opening `path` throws, if any.
std::optional<setup_error> open_failure(const std::string& path, const store_options& options = {}) {
  try {
    sqlite_store::open(path, options);
  } catch (const setup_error& e) {
    return e;
  }
  return std::nullopt;
}

workflow_record make_workflow(const std::string& id, trellis::detail::epoch_ms created_at) {
  workflow_record w;
  w.id = id;
  w.submit_key = "key-" + id;
  w.state = node_state::started;
  w.canvas = value::map{{"kind", "chain"}, {"steps", value::array{value::map{{"task", "orders.reserve"}}}}};
  w.created_at = created_at;
  return w;
}

node_record make_node(const std::string& workflow_id, std::int32_t node, node_state state) {
  node_record n;
  n.workflow_id = workflow_id;
  n.node = node;
  n.task = "orders.charge";
  n.state = state;
  n.attempt = 1;
  n.updated_at = 1000;
  return n;
}

dead_letter_record make_dead_letter(const std::string& message_id, trellis::detail::epoch_ms at) {
  dead_letter_record d;
  d.message_id = message_id;
  d.workflow_id = "wf-1";
  d.node = 2;
  d.task = "orders.charge";
  d.reason = "task_failed";
  d.error = "gateway down";
  d.attempts = 5;
  d.envelope = std::string("\x82\xa1v\x01\x00\xff", 6);  // raw bytes, including NUL and 0xff
  d.created_at = at;
  return d;
}

}  // namespace

TEST_CASE("a store file keeps its data and schema version when reopened", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("store.db");
  auto w = make_workflow("wf-1", 100);
  w.result = value::map{{"bytes", trellis::binary{{0, 1, 255}}}, {"n", -7}, {"x", 1.5}, {"ok", true}};
  auto n = make_node("wf-1", 3, node_state::success);
  n.result = value::array{1, "two", nullptr};
  {
    auto store = sqlite_store::open(path);
    CHECK(store->schema_version() == sqlite_store::current_schema_version());
    REQUIRE(store->begin());
    REQUIRE(store->insert_workflow(w));
    REQUIRE(store->upsert_node(n));
    REQUIRE(store->insert_attempt({"wf-1", 3, 1, "timeout", "took too long", 900}));
    REQUIRE(store->commit());
  }

  auto store = sqlite_store::open(path);
  CHECK(store->schema_version() == sqlite_store::current_schema_version());
  auto found = store->find_workflow("wf-1");
  REQUIRE(found);
  REQUIRE(found->has_value());
  const auto& got = **found;
  CHECK(got.id == "wf-1");
  CHECK(got.submit_key == std::optional<std::string>{"key-wf-1"});
  CHECK(got.state == node_state::started);
  CHECK(got.canvas == w.canvas);
  CHECK(got.result == w.result);
  CHECK(got.error.is_nil());
  CHECK(got.created_at == 100);

  auto by_key = store->find_workflow_by_key("key-wf-1");
  REQUIRE(by_key);
  REQUIRE(by_key->has_value());
  CHECK((*by_key)->id == "wf-1");

  auto nodes = store->nodes_of("wf-1");
  REQUIRE(nodes);
  REQUIRE(nodes->size() == 1);
  CHECK(nodes->front().node == 3);
  CHECK(nodes->front().state == node_state::success);
  CHECK(nodes->front().result == n.result);

  auto attempts = store->attempts_of("wf-1");
  REQUIRE(attempts);
  REQUIRE(attempts->size() == 1);
  CHECK(attempts->front().error_type == "timeout");
  CHECK(attempts->front().error_message == "took too long");
  CHECK(attempts->front().finished_at == 900);
}

TEST_CASE("a store file runs in WAL mode", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("store.db");
  auto store = sqlite_store::open(path);
  raw_connection other{path};
  CHECK(other.query_text("PRAGMA journal_mode") == "wal");
}

TEST_CASE("an in-memory store works without a file", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->begin());
  REQUIRE(store->insert_workflow(make_workflow("wf-1", 1)));
  REQUIRE(store->commit());
  auto found = store->find_workflow("wf-1");
  REQUIRE(found);
  CHECK(found->has_value());
}

TEST_CASE("lookups of unknown ids return nothing rather than an error", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  auto w = store->find_workflow("nope");
  REQUIRE(w);
  CHECK_FALSE(w->has_value());
  auto k = store->find_workflow_by_key("nope");
  REQUIRE(k);
  CHECK_FALSE(k->has_value());
  auto i = store->find_idempotency_key("nope");
  REQUIRE(i);
  CHECK_FALSE(i->has_value());
  auto d = store->find_dead_letter(42);
  REQUIRE(d);
  CHECK_FALSE(d->has_value());
  auto n = store->nodes_of("nope");
  REQUIRE(n);
  CHECK(n->empty());
}

TEST_CASE("unfinished_workflows lists workflows not yet finished, oldest first", "[unit][sqlite]") {
  temp_dir dir;
  auto store = sqlite_store::open(dir.file("store.db"));
  REQUIRE(store->begin());
  REQUIRE(store->insert_workflow(make_workflow("wf-late", 300)));
  REQUIRE(store->insert_workflow(make_workflow("wf-done", 100)));
  REQUIRE(store->insert_workflow(make_workflow("wf-early", 200)));
  REQUIRE(store->insert_workflow(make_workflow("wf-failed", 150)));
  REQUIRE(store->insert_workflow(make_workflow("wf-revoked", 160)));
  REQUIRE(store->finish_workflow("wf-done", node_state::success, value{42}, value{}, 400));
  REQUIRE(store->finish_workflow("wf-failed", node_state::failure, value{},
                                 value::map{{"task", "orders.charge"}, {"message", "declined"}}, 410));
  REQUIRE(store->finish_workflow("wf-revoked", node_state::revoked, value{}, value{}, 420));
  REQUIRE(store->commit());

  auto unfinished = store->unfinished_workflows();
  REQUIRE(unfinished);
  REQUIRE(unfinished->size() == 2);
  CHECK((*unfinished)[0].id == "wf-early");
  CHECK((*unfinished)[1].id == "wf-late");

  auto done = store->find_workflow("wf-done");
  REQUIRE(done);
  REQUIRE(done->has_value());
  CHECK((*done)->state == node_state::success);
  CHECK((*done)->result == value{42});
  CHECK((*done)->finished_at == 400);
}

TEST_CASE("reopen_workflow puts a finished workflow back among the unfinished", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->insert_workflow(make_workflow("wf-1", 1)));
  REQUIRE(store->finish_workflow("wf-1", node_state::failure, value{}, value::map{{"message", "boom"}}, 5));
  REQUIRE(store->reopen_workflow("wf-1"));

  auto unfinished = store->unfinished_workflows();
  REQUIRE(unfinished);
  REQUIRE(unfinished->size() == 1);
  CHECK(unfinished->front().state == node_state::started);
  CHECK(unfinished->front().error.is_nil());
  CHECK(unfinished->front().finished_at == 0);
}

TEST_CASE("finishing or reopening an unknown workflow reports not_found", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  auto finished = store->finish_workflow("ghost", node_state::success, value{1}, value{}, 5);
  REQUIRE_FALSE(finished);
  CHECK(finished.error().code() == errc::not_found);
  CHECK_THAT(finished.error().message(), Catch::Contains("ghost"));
  auto reopened = store->reopen_workflow("ghost");
  REQUIRE_FALSE(reopened);
  CHECK(reopened.error().code() == errc::not_found);
  auto replayed = store->mark_dead_letter_replayed(99, 5);
  REQUIRE_FALSE(replayed);
  CHECK(replayed.error().code() == errc::not_found);
}

TEST_CASE("a second workflow with the same submit key is refused", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->insert_workflow(make_workflow("wf-1", 1)));
  auto second = make_workflow("wf-2", 2);
  second.submit_key = "key-wf-1";
  auto inserted = store->insert_workflow(second);
  REQUIRE_FALSE(inserted);
  CHECK(inserted.error().code() == errc::store_failed);
  CHECK_THAT(inserted.error().message(), Catch::Contains("insert workflow wf-2") && Catch::Contains("UNIQUE"));
}

TEST_CASE("upsert_node replaces the row of the same workflow and node", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->begin());
  auto retrying = make_node("wf-1", 1, node_state::retry);
  retrying.error = value::map{{"type", "timeout"}, {"message", "slow"}};
  retrying.due_at = 5000;
  REQUIRE(store->upsert_node(retrying));
  REQUIRE(store->upsert_node(make_node("wf-1", 0, node_state::success)));
  auto succeeded = make_node("wf-1", 1, node_state::success);
  succeeded.attempt = 2;
  succeeded.result = value{"charged"};
  REQUIRE(store->upsert_node(succeeded));
  REQUIRE(store->commit());

  auto nodes = store->nodes_of("wf-1");
  REQUIRE(nodes);
  REQUIRE(nodes->size() == 2);
  CHECK((*nodes)[0].node == 0);
  const auto& replaced = (*nodes)[1];
  CHECK(replaced.node == 1);
  CHECK(replaced.state == node_state::success);
  CHECK(replaced.attempt == 2);
  CHECK(replaced.result == value{"charged"});
  CHECK(replaced.error.is_nil());
  CHECK(replaced.due_at == 0);
}

TEST_CASE("attempts are listed by node and attempt", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->insert_attempt({"wf-1", 2, 2, "io", "second", 20}));
  REQUIRE(store->insert_attempt({"wf-1", 1, 1, "io", "first of node 1", 5}));
  REQUIRE(store->insert_attempt({"wf-1", 2, 1, "io", "first", 10}));
  REQUIRE(store->insert_attempt({"wf-other", 0, 1, "io", "elsewhere", 1}));
  auto attempts = store->attempts_of("wf-1");
  REQUIRE(attempts);
  REQUIRE(attempts->size() == 3);
  CHECK((*attempts)[0].error_message == "first of node 1");
  CHECK((*attempts)[1].error_message == "first");
  CHECK((*attempts)[2].error_message == "second");
}

TEST_CASE("the first success recorded for an idempotency key wins", "[unit][sqlite]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->put_idempotency_key("charge:A-17", value{"receipt-1"}, "wf-1", 2, 10));
  REQUIRE(store->put_idempotency_key("charge:A-17", value{"receipt-2"}, "wf-1", 2, 20));
  auto found = store->find_idempotency_key("charge:A-17");
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK(**found == value{"receipt-1"});

  SECTION("a nil result is still a recorded success") {
    REQUIRE(store->put_idempotency_key("notify:A-17", value{}, "wf-1", 3, 10));
    auto nil = store->find_idempotency_key("notify:A-17");
    REQUIRE(nil);
    REQUIRE(nil->has_value());
    CHECK((*nil)->is_nil());
  }
}

TEST_CASE("dead letters are listed newest first, replayed ones only on request, and found by id", "[unit][sqlite]") {
  temp_dir dir;
  auto store = sqlite_store::open(dir.file("store.db"));
  auto first = store->insert_dead_letter(make_dead_letter("m-1", 10));
  auto second = store->insert_dead_letter(make_dead_letter("m-2", 20));
  auto third = store->insert_dead_letter(make_dead_letter("", 30));
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(third);
  CHECK(*first < *second);
  CHECK(*second < *third);

  REQUIRE(store->mark_dead_letter_replayed(*second, 99));

  auto pending = store->dead_letters();
  REQUIRE(pending);
  REQUIRE(pending->size() == 2);
  CHECK((*pending)[0].id == *third);
  CHECK((*pending)[1].id == *first);

  auto all = store->dead_letters(true);
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK((*all)[1].id == *second);
  CHECK((*all)[1].replayed_at == 99);

  auto found = store->find_dead_letter(*first);
  REQUIRE(found);
  REQUIRE(found->has_value());
  const auto& d = **found;
  auto expected = make_dead_letter("m-1", 10);
  CHECK(d.message_id == "m-1");
  CHECK(d.workflow_id == expected.workflow_id);
  CHECK(d.node == expected.node);
  CHECK(d.task == expected.task);
  CHECK(d.reason == expected.reason);
  CHECK(d.error == expected.error);
  CHECK(d.attempts == expected.attempts);
  CHECK(d.envelope == expected.envelope);
  CHECK(d.created_at == 10);
  CHECK(d.replayed_at == 0);
}

TEST_CASE("a file of random bytes is refused as store_corrupt naming the path", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("junk.db");
  REQUIRE(trellis::test::write_random_bytes(path, 12345, 8192));
  auto failure = open_failure(path);
  REQUIRE(failure);
  CHECK(failure->code() == errc::store_corrupt);
  CHECK_THAT(failure->what(), Catch::Contains(path) && Catch::Contains("not a database"));
}

TEST_CASE("an SQLite file of another application is refused as not a Trellis store", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("other.db");
  {
    raw_connection other{path};
    other.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
  }
  auto failure = open_failure(path);
  REQUIRE(failure);
  CHECK(failure->code() == errc::store_corrupt);
  CHECK_THAT(failure->what(), Catch::Contains(path) && Catch::Contains("not a Trellis store"));

  // Refusing means not touching: no Trellis tables, no switch to WAL.
  raw_connection other{path};
  CHECK(other.query_text("PRAGMA journal_mode") == "delete");
  CHECK(other.query_text("SELECT count(*) FROM sqlite_master WHERE name = 'trellis_meta'") == "0");
}

TEST_CASE("a store with a newer schema version is refused as store_corrupt", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("store.db");
  sqlite_store::open(path);
  auto newer = sqlite_store::current_schema_version() + 1;
  {
    raw_connection other{path};
    other.exec("PRAGMA user_version = " + std::to_string(newer));
  }
  auto failure = open_failure(path);
  REQUIRE(failure);
  CHECK(failure->code() == errc::store_corrupt);
  CHECK_THAT(failure->what(),
             Catch::Contains("schema version " + std::to_string(newer)) && Catch::Contains("newer than this build"));

  SECTION("read-only opens check the version too") {
    store_options read_only;
    read_only.read_only = true;
    auto ro_failure = open_failure(path, read_only);
    REQUIRE(ro_failure);
    CHECK(ro_failure->code() == errc::store_corrupt);
  }
}

TEST_CASE("begin reports store_locked while another connection holds the write lock", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("store.db");
  store_options options;
  options.busy_timeout_ms = 20;
  auto store = sqlite_store::open(path, options);
  raw_connection other{path};
  other.exec("BEGIN IMMEDIATE");

  auto blocked = store->begin();
  REQUIRE_FALSE(blocked);
  CHECK(blocked.error().code() == errc::store_locked);
  CHECK_THAT(blocked.error().message(), Catch::Contains("begin"));

  SECTION("and works again once the other connection releases it") {
    other.exec("COMMIT");
    REQUIRE(store->begin());
    REQUIRE(store->insert_workflow(make_workflow("wf-1", 1)));
    REQUIRE(store->commit());
    CHECK(other.query_text("SELECT id FROM workflows") == "wf-1");
  }
}

TEST_CASE("rollback discards everything written since begin", "[unit][sqlite]") {
  temp_dir dir;
  auto store = sqlite_store::open(dir.file("store.db"));
  REQUIRE(store->begin());
  REQUIRE(store->insert_workflow(make_workflow("wf-kept", 1)));
  REQUIRE(store->commit());

  REQUIRE(store->begin());
  REQUIRE(store->insert_workflow(make_workflow("wf-dropped", 2)));
  REQUIRE(store->upsert_node(make_node("wf-kept", 0, node_state::success)));
  store->rollback();

  auto dropped = store->find_workflow("wf-dropped");
  REQUIRE(dropped);
  CHECK_FALSE(dropped->has_value());
  auto nodes = store->nodes_of("wf-kept");
  REQUIRE(nodes);
  CHECK(nodes->empty());

  SECTION("rollback without an open transaction does nothing and the store stays usable") {
    store->rollback();
    REQUIRE(store->begin());
    REQUIRE(store->upsert_node(make_node("wf-kept", 0, node_state::success)));
    REQUIRE(store->commit());
    auto after = store->nodes_of("wf-kept");
    REQUIRE(after);
    CHECK(after->size() == 1);
  }
}

TEST_CASE("a read-only store reads but refuses every write", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("store.db");
  {
    auto store = sqlite_store::open(path);
    REQUIRE(store->insert_workflow(make_workflow("wf-1", 1)));
  }
  store_options options;
  options.read_only = true;
  auto store = sqlite_store::open(path, options);
  CHECK(store->schema_version() == sqlite_store::current_schema_version());
  auto found = store->find_workflow("wf-1");
  REQUIRE(found);
  CHECK(found->has_value());

  auto begun = store->begin();
  REQUIRE_FALSE(begun);
  CHECK(begun.error().code() == errc::store_failed);

  auto upserted = store->upsert_node(make_node("wf-1", 3, node_state::success));
  REQUIRE_FALSE(upserted);
  CHECK(upserted.error().code() == errc::store_failed);
  CHECK_THAT(upserted.error().message(), Catch::Contains("upsert node 3 of workflow wf-1"));

  CHECK_FALSE(store->insert_workflow(make_workflow("wf-2", 2)));
  CHECK_FALSE(store->put_idempotency_key("k", value{1}, "wf-1", 0, 1));
  CHECK_FALSE(store->insert_dead_letter(make_dead_letter("m", 1)));
  auto nodes = store->nodes_of("wf-1");
  REQUIRE(nodes);
  CHECK(nodes->empty());
}

TEST_CASE("a read-only open of a missing file fails with store_failed and creates nothing", "[unit][sqlite]") {
  temp_dir dir;
  auto path = dir.file("missing.db");
  store_options options;
  options.read_only = true;
  auto failure = open_failure(path, options);
  REQUIRE(failure);
  CHECK(failure->code() == errc::store_failed);
  CHECK_THAT(failure->what(), Catch::Contains(path));
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("an unknown synchronous setting is refused at open", "[unit][sqlite]") {
  store_options options;
  options.synchronous = "SOMETIMES";
  auto failure = open_failure(":memory:", options);
  REQUIRE(failure);
  CHECK_THAT(failure->what(), Catch::Contains("SOMETIMES"));
}
