// Progress in the store: schema version 2 adds the node_progress table, an
// older store migrates when a writer opens it, and the status document
// shows each node's latest progress and custom state with the right attempt.

#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_reports.hpp"
#include "trellis/store/store_schema.hpp"

#include "support/temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

using trellis::errc;
using trellis::node_state;
using trellis::setup_error;
using trellis::task_progress;
using trellis::value;
using trellis::detail::node_record;
using trellis::detail::progress_record;
using trellis::detail::sqlite_store;
using trellis::detail::store_options;
using trellis::detail::workflow_record;
using trellis::test::temp_dir;

namespace {

/// Runs `sql` on `path` with a connection of its own, as an older build would.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  char* message = nullptr;
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  }
  std::string text = message != nullptr ? message : "";
  sqlite3_free(message);
  sqlite3_close_v2(db);
  if (rc != SQLITE_OK) {
    throw std::runtime_error("raw exec failed: " + text);
  }
}

progress_record report(std::int32_t node, std::int32_t attempt, std::int64_t done, std::string state = {}) {
  progress_record p;
  p.workflow_id = "wf-1";
  p.node = node;
  p.task = "import";
  p.attempt = attempt;
  p.progress.done = done;
  p.progress.total = 10;
  p.progress.message = "rows";
  p.progress.state = std::move(state);
  p.updated_at = 5;
  return p;
}

node_record row(std::int32_t node, node_state state, std::int32_t attempt) {
  node_record n;
  n.workflow_id = "wf-1";
  n.node = node;
  n.task = "import";
  n.state = state;
  n.attempt = attempt;
  n.updated_at = 5;
  return n;
}

void add_workflow(sqlite_store& store) {
  workflow_record w;
  w.id = "wf-1";
  w.state = node_state::started;
  w.canvas = value::map{{"task", "import"}};
  w.created_at = 1;
  REQUIRE(store.insert_workflow(w));
}

/// The status document's node row of `node`, or nil.
value node_of(const value::map& doc, std::int32_t node) {
  for (const auto& n : doc.at("nodes").as_array()) {
    if (n.as_map().at("node") == value(node)) {
      return n;
    }
  }
  return value{};
}

}  // namespace

TEST_CASE("a version 1 store migrates to version 2 and keeps its rows", "[unit][sqlite][progress]") {
  temp_dir dir;
  auto path = dir.file("old.db");
  // The file exactly as a build of schema version 1 left it.
  raw_exec(path, std::string{trellis::detail::store_migrations[0]} +
                     "PRAGMA user_version = 1;"
                     "INSERT INTO workflows (id, state, canvas, created_at) VALUES ('wf-old', 2, NULL, 7);"
                     "INSERT INTO nodes (workflow_id, node, task, state, attempt, due_at, updated_at) "
                     "VALUES ('wf-old', 0, 'import', 5, 1, 99, 7);");
  REQUIRE(sqlite_store::current_schema_version() >= 2);

  SECTION("a read-only open refuses it until a writer migrates it") {
    store_options read_only;
    read_only.read_only = true;
    try {
      sqlite_store::open(path, read_only);
      FAIL("opened an old store read-only");
    } catch (const setup_error& e) {
      CHECK(e.code() == errc::store_failed);
      CHECK_THAT(e.what(), Catch::Contains("schema version 1"));
    }
  }
  SECTION("a writer migrates it") {
    auto store = sqlite_store::open(path);
    CHECK(store->schema_version() == sqlite_store::current_schema_version());
    auto nodes = store->nodes_of("wf-old");
    REQUIRE(nodes);
    REQUIRE(nodes->size() == 1);
    CHECK((*nodes)[0].state == node_state::retry);
    CHECK((*nodes)[0].due_at == 99);
    auto none = store->progress_of("wf-old");
    REQUIRE(none);
    CHECK(none->empty());
    REQUIRE(store->begin());
    REQUIRE(store->upsert_progress(report(0, 2, 3)));
    REQUIRE(store->commit());
    store.reset();
    // Reopened: version 2, nothing to migrate, the row kept.
    store = sqlite_store::open(path);
    CHECK(store->schema_version() == sqlite_store::current_schema_version());
    auto kept = store->progress_of("wf-1");
    REQUIRE(kept);
    CHECK(kept->size() == 1);
  }
}

TEST_CASE("progress rows are replaced per node and untouched by node rows", "[unit][sqlite][progress]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->begin());
  REQUIRE(store->upsert_progress(report(2, 1, 3, "UPLOADING")));
  REQUIRE(store->upsert_progress(report(2, 1, 4)));  // the latest picture replaces
  REQUIRE(store->upsert_progress(report(5, 1, 1)));
  REQUIRE(store->upsert_node(row(2, node_state::success, 1)));
  REQUIRE(store->commit());
  auto rows = store->progress_of("wf-1");
  REQUIRE(rows);
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].node == 2);
  CHECK((*rows)[0].progress.done == 4);
  CHECK((*rows)[0].progress.total == 10);
  CHECK((*rows)[0].progress.message == "rows");
  CHECK((*rows)[0].progress.state.empty());
  CHECK((*rows)[0].task == "import");
  CHECK((*rows)[1].node == 5);

  // Only a custom state: the counts are NULL, and read back empty.
  progress_record state_only = report(7, 1, 0, "WAITING");
  state_only.progress.done.reset();
  state_only.progress.total.reset();
  REQUIRE(store->begin());
  REQUIRE(store->upsert_progress(state_only));
  REQUIRE(store->commit());
  rows = store->progress_of("wf-1");
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK_FALSE((*rows)[2].progress.done);
  CHECK((*rows)[2].progress.state == "WAITING");
}

TEST_CASE("the status document shows progress with the attempt it belongs to", "[unit][sqlite][progress]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->begin());
  add_workflow(*store);
  // 1: first attempt running, no node row yet.
  REQUIRE(store->upsert_progress(report(1, 1, 3, "UPLOADING")));
  // 2: finished after reporting: kept.
  REQUIRE(store->upsert_node(row(2, node_state::success, 1)));
  REQUIRE(store->upsert_progress(report(2, 1, 10)));
  // 3: attempt 1 failed into a retry; attempt 2 runs and reports.
  REQUIRE(store->upsert_node(row(3, node_state::retry, 1)));
  REQUIRE(store->upsert_progress(report(3, 2, 6)));
  // 4: an earlier attempt's report, under a later attempt's row: not shown.
  REQUIRE(store->upsert_node(row(4, node_state::failure, 3)));
  REQUIRE(store->upsert_progress(report(4, 2, 9, "OLD")));
  // 5: a custom state without counts.
  progress_record state_only = report(5, 1, 0, "WAITING");
  state_only.progress.done.reset();
  REQUIRE(store->upsert_progress(state_only));
  REQUIRE(store->commit());

  auto doc = trellis::detail::status_document(*store, "wf-1");
  REQUIRE(doc);
  REQUIRE(*doc);
  const auto& d = **doc;
  REQUIRE(d.at("nodes").as_array().size() == 5);

  auto running = node_of(d, 1).as_map();
  CHECK(running.at("state") == value("STARTED"));
  CHECK(running.at("attempt") == value(1));
  CHECK(running.at("task") == value("import"));
  CHECK(running.at("custom_state") == value("UPLOADING"));
  CHECK(running.at("progress") == value(value::map{{"done", 3}, {"total", 10}, {"message", "rows"}}));

  auto finished = node_of(d, 2).as_map();
  CHECK(finished.at("state") == value("SUCCESS"));
  CHECK(finished.at("progress").as_map().at("done") == value(10));
  CHECK(finished.at("custom_state").is_nil());

  auto retried = node_of(d, 3).as_map();
  CHECK(retried.at("state") == value("STARTED"));
  CHECK(retried.at("attempt") == value(2));
  CHECK(retried.at("progress").as_map().at("done") == value(6));

  auto stale = node_of(d, 4).as_map();
  CHECK(stale.at("state") == value("FAILURE"));
  CHECK(stale.at("progress").is_nil());
  CHECK(stale.at("custom_state").is_nil());

  auto waiting = node_of(d, 5).as_map();
  CHECK(waiting.at("progress").is_nil());
  CHECK(waiting.at("custom_state") == value("WAITING"));
}
