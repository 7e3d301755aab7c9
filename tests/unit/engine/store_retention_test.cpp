// The store's retention operations (sqlite_store.hpp, "retention"): what a
// sweep lists and deletes, what it keeps, and that each call is bounded.

#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_schema.hpp"

#include "support/temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

using trellis::errc;
using trellis::node_state;
using trellis::value;
using trellis::detail::attempt_record;
using trellis::detail::dead_letter_record;
using trellis::detail::epoch_ms;
using trellis::detail::node_record;
using trellis::detail::progress_record;
using trellis::detail::replacement_record;
using trellis::detail::sqlite_store;
using trellis::detail::workflow_record;
using trellis::test::temp_dir;

namespace {

/// Adds a workflow with a node, an attempt, a progress row and a
/// replacement; finished at `finished_at` in `state`, or unfinished when
/// `finished_at` is 0.
void add_workflow(sqlite_store& store, const std::string& id, epoch_ms finished_at,
                  node_state state = node_state::success) {
  workflow_record w;
  w.id = id;
  w.state = node_state::started;
  w.canvas = value::map{{"kind", "task"}, {"task", "t"}};
  w.created_at = 1;
  REQUIRE(store.insert_workflow(w));
  node_record n;
  n.workflow_id = id;
  n.node = 0;
  n.task = "t";
  n.state = node_state::success;
  n.attempt = 2;
  REQUIRE(store.upsert_node(n));
  REQUIRE(store.insert_attempt(attempt_record{id, 0, 1, "boom", "first try failed", 5}));
  progress_record p;
  p.workflow_id = id;
  p.task = "t";
  p.attempt = 2;
  p.progress.message = "half";
  REQUIRE(store.upsert_progress(p));
  replacement_record r;
  r.workflow_id = id;
  r.node = 0;
  r.attempt = 2;
  r.first_node = 1;
  r.canvas = value::map{{"kind", "task"}, {"task", "u"}};
  REQUIRE(store.insert_replacement(r));
  if (finished_at != 0) {
    REQUIRE(store.finish_workflow(id, state, value{42}, value{}, finished_at));
  }
}

dead_letter_record letter(const std::string& wf, epoch_ms at) {
  dead_letter_record d;
  d.message_id = wf + ":0:1";
  d.workflow_id = wf;
  d.node = 0;
  d.task = "t";
  d.reason = "task_failed";
  d.error = "boom";
  d.attempts = 1;
  d.envelope = "bytes";
  d.created_at = at;
  return d;
}

std::int64_t count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
    throw std::runtime_error("count failed: " + sql);
  }
  auto n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  return n;
}

}  // namespace

TEST_CASE("expired_workflows lists finished workflows older than the cut-off, oldest first, bounded",
          "[unit][sqlite][retention]") {
  temp_dir dir;
  auto store = sqlite_store::open(dir.file("s.db"));
  REQUIRE(store->begin());
  add_workflow(*store, "late", 300);
  add_workflow(*store, "early", 100, node_state::failure);
  add_workflow(*store, "middle", 200, node_state::revoked);
  add_workflow(*store, "running", 0);
  add_workflow(*store, "fresh", 900);
  REQUIRE(store->commit());

  auto all = store->expired_workflows(500, 100);
  REQUIRE(all);
  CHECK(*all == std::vector<std::string>{"early", "middle", "late"});  // never `running`, nor `fresh`
  auto two = store->expired_workflows(500, 2);
  REQUIRE(two);
  CHECK(*two == std::vector<std::string>{"early", "middle"});
  auto none = store->expired_workflows(100, 100);  // strictly before the cut-off
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("delete_workflow deletes a finished workflow and all it owns, and keeps keys and dead letters",
          "[unit][sqlite][retention]") {
  temp_dir dir;
  auto path = dir.file("s.db");
  auto store = sqlite_store::open(path);
  REQUIRE(store->begin());
  add_workflow(*store, "gone", 100);
  add_workflow(*store, "kept", 100);
  REQUIRE(store->put_idempotency_key("charge-1", value{1}, "gone", 0, 50));
  REQUIRE(store->insert_dead_letter(letter("gone", 60)));
  REQUIRE(store->commit());

  REQUIRE(store->begin());
  auto rows = store->delete_workflow("gone");
  REQUIRE(store->commit());
  REQUIRE(rows);
  CHECK(*rows == 5);  // workflow, node, attempt, progress, replacement
  for (auto table : {"workflows WHERE id", "nodes WHERE workflow_id", "attempts WHERE workflow_id",
                     "node_progress WHERE workflow_id", "node_replacements WHERE workflow_id"}) {
    INFO(table);
    CHECK(count(path, std::string{"SELECT count(*) FROM "} + table + " = 'gone'") == 0);
    CHECK(count(path, std::string{"SELECT count(*) FROM "} + table + " = 'kept'") == 1);
  }
  auto key = store->find_idempotency_key("charge-1");
  REQUIRE(key);
  CHECK(key->has_value());
  auto letters = store->dead_letters(true);
  REQUIRE(letters);
  CHECK(letters->size() == 1);
}

TEST_CASE("delete_workflow refuses an unfinished workflow and reports an unknown one",
          "[unit][sqlite][retention]") {
  temp_dir dir;
  auto path = dir.file("s.db");
  auto store = sqlite_store::open(path);
  REQUIRE(store->begin());
  add_workflow(*store, "running", 0);
  auto refused = store->delete_workflow("running");
  auto unknown = store->delete_workflow("nobody");
  REQUIRE(store->commit());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::invalid_workflow);
  CHECK_THAT(refused.error().message(), Catch::Contains("STARTED"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code() == errc::not_found);
  CHECK(count(path, "SELECT count(*) FROM nodes WHERE workflow_id = 'running'") == 1);
}

TEST_CASE("idempotency keys and dead letters are pruned by their own age, oldest first, bounded",
          "[unit][sqlite][retention]") {
  temp_dir dir;
  auto path = dir.file("s.db");
  auto store = sqlite_store::open(path);
  REQUIRE(store->begin());
  for (int i = 0; i < 5; ++i) {
    REQUIRE(store->put_idempotency_key("k" + std::to_string(i), value{i}, "wf", i, 100 * (i + 1)));
    REQUIRE(store->insert_dead_letter(letter("wf", 100 * (i + 1))));
  }
  REQUIRE(store->commit());

  REQUIRE(store->begin());
  auto keys = store->prune_idempotency_keys(350, 2);  // k0 and k1 of k0..k2
  auto letters = store->prune_dead_letters(350, 10);  // the three before 350
  REQUIRE(store->commit());
  REQUIRE(keys);
  CHECK(*keys == 2);
  REQUIRE(letters);
  CHECK(*letters == 3);
  for (int i = 0; i < 5; ++i) {
    auto k = store->find_idempotency_key("k" + std::to_string(i));
    REQUIRE(k);
    CHECK(k->has_value() == (i >= 2));
  }
  auto left = store->dead_letters(true);
  REQUIRE(left);
  REQUIRE(left->size() == 2);
  CHECK(left->back().created_at == 400);

  REQUIRE(store->begin());
  auto rest = store->prune_idempotency_keys(350, 10);
  REQUIRE(store->commit());
  REQUIRE(rest);
  CHECK(*rest == 1);
}

TEST_CASE("the retention deletes are writes: a read-only store refuses them", "[unit][sqlite][retention]") {
  temp_dir dir;
  auto path = dir.file("s.db");
  {
    auto store = sqlite_store::open(path);
    REQUIRE(store->begin());
    add_workflow(*store, "done", 100);
    REQUIRE(store->commit());
  }
  trellis::detail::store_options read_only;
  read_only.read_only = true;
  auto store = sqlite_store::open(path, read_only);
  auto listed = store->expired_workflows(500, 10);
  REQUIRE(listed);
  CHECK(listed->size() == 1);
  CHECK_FALSE(store->delete_workflow("done"));
  CHECK_FALSE(store->prune_idempotency_keys(500, 10));
  CHECK_FALSE(store->prune_dead_letters(500, 10));
}

TEST_CASE("a version 3 store migrates to the current version with the retention indexes, and sweeps use them",
          "[unit][sqlite][retention]") {
  temp_dir dir;
  auto path = dir.file("old.db");
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK);
    std::string sql;
    for (int v = 0; v < 3; ++v) {
      sql += trellis::detail::store_migrations[v];
    }
    sql += "PRAGMA user_version = 3;"
           "INSERT INTO workflows (id, state, canvas, created_at, finished_at) VALUES ('wf-old', 3, NULL, 7, 8);";
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close_v2(db);
  }
  REQUIRE(sqlite_store::current_schema_version() >= 4);
  auto store = sqlite_store::open(path);
  CHECK(store->schema_version() == sqlite_store::current_schema_version());
  for (auto index : {"workflows_finished", "idempotency_keys_created", "dead_letters_created"}) {
    INFO(index);
    CHECK(count(path, std::string{"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '"} + index +
                          "'") == 1);
  }
  auto listed = store->expired_workflows(100, 10);
  REQUIRE(listed);
  CHECK(*listed == std::vector<std::string>{"wf-old"});
  // The planner reads the partial index, not the whole table.
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db,
                             "EXPLAIN QUERY PLAN SELECT id FROM workflows WHERE state IN (3, 4, 6) AND "
                             "finished_at < 100 ORDER BY finished_at LIMIT 10",
                             -1, &stmt, nullptr) == SQLITE_OK);
  std::string plan;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
    plan += "\n";
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  CHECK_THAT(plan, Catch::Contains("workflows_finished"));
}
