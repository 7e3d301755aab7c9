// The store's lifecycle and writes (sqlite_store.hpp): opening, identity
// check and migration, prepared statements, transactions and every write.
// The reads are in store_reads.cpp; the SQLite plumbing both use is in
// detail/sqlite_access.hpp.

#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/detail/sqlite_access.hpp"

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <utility>

namespace trellis::detail {

void sqlite_store::impl::connect(const store_options& options) {
  auto sync_pragma = synchronous_pragma(options.synchronous);
  bool memory = is_memory_path(path);
  if (read_only && memory) {
    throw setup_error(errc::store_failed, "a read-only store needs an existing file, not ':memory:'");
  }
  // NOMUTEX: a store is used by one thread at a time, so SQLite's own
  // per-connection mutex would only cost time.
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db.reset(raw);  // the handle exists (and must be closed) even when opening fails
  if (rc != SQLITE_OK) {
    throw_setup(db.get(), rc, std::string{"cannot open store '"} + path + "'" + (read_only ? " read-only" : ""));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);

  bool empty = verify_identity();
  if (read_only) {
    if (empty) {
      throw setup_error(errc::store_corrupt, "store '" + path + "' is empty, not a Trellis store");
    }
    if (version < schema_version_of_this_build) {
      throw setup_error(errc::store_failed, "store '" + path + "' has schema version " + std::to_string(version) +
                                                ", older than this build (" +
                                                std::to_string(schema_version_of_this_build) +
                                                "); open it once read-write to migrate it");
    }
  } else {
    if (!memory) {
      // WAL: readers (status, dlq) never block the dispatcher, and a commit
      // is one sequential append. The mode is persistent in the file.
      auto mode = query_text(db.get(), "PRAGMA journal_mode = WAL", "switch store '" + path + "' to WAL");
      if (!mode || *mode != "wal") {
        throw setup_error(errc::store_failed, "store '" + path + "' cannot use WAL journaling (journal_mode is '" +
                                                  mode.value_or("") + "')");
      }
    }
    exec(db.get(), sync_pragma, "configure store '" + path + "'");
    migrate();
  }
  prepare_statements();
}

bool sqlite_store::impl::verify_identity() {
  // SQLite reads the file header lazily: this first query is where a file of
  // random bytes reports SQLITE_NOTADB ("file is not a database").
  auto objects = query_int(db.get(), "SELECT count(*) FROM sqlite_master", "cannot open store '" + path + "'");
  version = static_cast<int>(query_int(db.get(), "PRAGMA user_version", "read schema version of '" + path + "'"));
  if (objects == 0 && version == 0) {
    return true;
  }
  auto has_meta =
      query_int(db.get(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trellis_meta'",
                "read store '" + path + "'");
  std::optional<std::string> application;
  if (has_meta != 0) {
    application =
        query_text(db.get(), "SELECT value FROM trellis_meta WHERE key = 'application'", "read store '" + path + "'");
  }
  if (application.value_or("") != application_name) {
    throw setup_error(errc::store_corrupt,
                      "'" + path +
                          "' is an SQLite database but not a Trellis store (no trellis application mark); "
                          "refusing to touch it");
  }
  if (version > schema_version_of_this_build) {
    throw setup_error(errc::store_corrupt, "store '" + path + "' has schema version " + std::to_string(version) +
                                               ", which is newer than this build (" +
                                               std::to_string(schema_version_of_this_build) + "); use a newer trellis");
  }
  if (version < 1) {
    throw setup_error(errc::store_corrupt, "store '" + path + "' is marked as Trellis but has no schema version");
  }
  return false;
}

void sqlite_store::impl::migrate() {
  if (version == schema_version_of_this_build) {
    return;
  }
  // IMMEDIATE takes the write lock first, so two processes opening the same
  // new file cannot both run the steps; the loser re-reads the version below.
  exec(db.get(), "BEGIN IMMEDIATE", "lock store '" + path + "' for migration");
  try {
    version = static_cast<int>(query_int(db.get(), "PRAGMA user_version", "read schema version of '" + path + "'"));
    if (version > schema_version_of_this_build) {
      throw setup_error(errc::store_corrupt, "store '" + path + "' has schema version " + std::to_string(version) +
                                                 ", which is newer than this build (" +
                                                 std::to_string(schema_version_of_this_build) + ")");
    }
    for (int v = version; v < schema_version_of_this_build; ++v) {
      exec(db.get(), std::string{store_migrations[v]},
           "migrate store '" + path + "' to schema version " + std::to_string(v + 1));
    }
    // user_version is written inside the same transaction as the steps, so a
    // crash leaves either the old schema and version or the new ones.
    exec(db.get(), "PRAGMA user_version = " + std::to_string(schema_version_of_this_build),
         "set schema version of '" + path + "'");
    exec(db.get(), "COMMIT", "commit migration of '" + path + "'");
  } catch (const setup_error&) {
    sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  version = schema_version_of_this_build;
}

void sqlite_store::impl::prepare_statements() {
  auto p = [this](std::string_view sql) {
    return prepare(db.get(), sql, "prepare statements for store '" + path + "'", true);
  };
  begin = p("BEGIN IMMEDIATE");
  commit = p("COMMIT");
  rollback = p("ROLLBACK");
  insert_workflow =
      p("INSERT INTO workflows (id, submit_key, state, canvas, result, error, created_at, finished_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  finish_workflow = p("UPDATE workflows SET state = ?2, result = ?3, error = ?4, finished_at = ?5 WHERE id = ?1");
  reopen_workflow = p("UPDATE workflows SET state = ?2, result = NULL, error = NULL, finished_at = 0 WHERE id = ?1");
  upsert_node =
      p("INSERT OR REPLACE INTO nodes (workflow_id, node, task, state, attempt, result, error, due_at, updated_at, "
        "retry_base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  insert_attempt =
      p("INSERT OR REPLACE INTO attempts (workflow_id, node, attempt, error_type, error_message, finished_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  upsert_progress =
      p("INSERT OR REPLACE INTO node_progress (workflow_id, node, task, attempt, done, total, message, "
        "custom_state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  progress_of =
      p("SELECT workflow_id, node, task, attempt, done, total, message, custom_state, updated_at "
        "FROM node_progress WHERE workflow_id = ?1 ORDER BY node");
  insert_replacement =
      p("INSERT INTO node_replacements (workflow_id, node, attempt, first_node, canvas, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  replacements_of =
      p("SELECT workflow_id, node, attempt, first_node, canvas, created_at FROM node_replacements "
        "WHERE workflow_id = ?1 ORDER BY first_node");
  // OR IGNORE: the first success wins; a duplicate outcome never rewrites it.
  put_idempotency_key =
      p("INSERT OR IGNORE INTO idempotency_keys (key, result, workflow_id, node, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
  insert_dead_letter =
      p("INSERT INTO dead_letters (message_id, workflow_id, node, task, reason, error, attempts, envelope, "
        "created_at, replayed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  mark_dead_letter_replayed = p("UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1");
  find_workflow = p(select_from(workflow_columns, "FROM workflows WHERE id = ?1"));
  find_workflow_by_key = p(select_from(workflow_columns, "FROM workflows WHERE submit_key = ?1"));
  // The WHERE clause repeats the partial index's, so the planner uses it.
  unfinished_workflows =
      p(select_from(workflow_columns, "FROM workflows WHERE state NOT IN (3, 4, 6) ORDER BY created_at, rowid"));
  // ?2 is a state, or -1 for every state.
  recent_workflows =
      p("SELECT id, submit_key, state, created_at, finished_at FROM workflows WHERE (?2 < 0 OR state = ?2) "
        "AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) "
        "ORDER BY created_at DESC, id DESC LIMIT ?1");
  nodes_of = p(select_from(node_columns, "FROM nodes WHERE workflow_id = ?1 ORDER BY node"));
  attempts_of =
      p("SELECT workflow_id, node, attempt, error_type, error_message, finished_at FROM attempts "
        "WHERE workflow_id = ?1 ORDER BY node, attempt");
  find_idempotency_key = p("SELECT result FROM idempotency_keys WHERE key = ?1");
  dead_letters = p(select_from(dead_letter_columns, "FROM dead_letters WHERE ?1 OR replayed_at = 0 ORDER BY id DESC"));
  find_dead_letter = p(select_from(dead_letter_columns, "FROM dead_letters WHERE id = ?1"));
  prepare_retention_statements();
}


// -- sqlite_store -------------------------------------------------------------------

sqlite_store::sqlite_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

sqlite_store::~sqlite_store() = default;

std::unique_ptr<sqlite_store> sqlite_store::open(const std::string& path, const store_options& options) {
  auto p = std::make_unique<impl>();
  p->path = path;
  p->read_only = options.read_only;
  p->connect(options);
  return std::unique_ptr<sqlite_store>(new sqlite_store(std::move(p)));
}

int sqlite_store::current_schema_version() noexcept { return schema_version_of_this_build; }

int sqlite_store::schema_version() const { return impl_->version; }

expected<void> sqlite_store::begin() {
  return impl_->write(impl_->begin.get(), no_parameters,
                      [this] { return "begin a write batch on store '" + impl_->path + "'"; });
}

expected<void> sqlite_store::commit() {
  statement_use use{impl_->commit.get()};
  return impl_->run(use, binder{use.get()}, [this] { return "commit a write batch to store '" + impl_->path + "'"; });
}

void sqlite_store::rollback() noexcept {
  // Autocommit mode means no transaction is open (never begun, already
  // committed, or rolled back by SQLite itself after an I/O error).
  if (sqlite3_get_autocommit(impl_->db.get()) != 0) {
    return;
  }
  statement_use use{impl_->rollback.get()};
  sqlite3_step(use.get());
}

expected<void> sqlite_store::insert_workflow(const workflow_record& w) {
  auto canvas = pack_column(w.canvas);
  auto result = pack_column(w.result);
  auto err = pack_column(w.error);
  return impl_->write(
      impl_->insert_workflow.get(),
      [&](binder& b) {
        b.text(w.id)
            .optional_text(w.submit_key)
            .state(w.state)
            .packed(canvas)
            .packed(result)
            .packed(err)
            .integer(w.created_at)
            .integer(w.finished_at);
      },
      [&w] { return "insert workflow " + w.id; });
}

expected<void> sqlite_store::finish_workflow(const std::string& id, node_state state, const value& result,
                                             const value& error, epoch_ms at) {
  auto packed_result = pack_column(result);
  auto packed_error = pack_column(error);
  return impl_->update(
      impl_->finish_workflow.get(),
      [&](binder& b) { b.text(id).state(state).packed(packed_result).packed(packed_error).integer(at); },
      [&id] { return "finish workflow " + id; });
}

expected<void> sqlite_store::reopen_workflow(const std::string& id) {
  return impl_->update(
      impl_->reopen_workflow.get(), [&id](binder& b) { b.text(id).state(node_state::started); },
      [&id] { return "reopen workflow " + id; });
}

expected<void> sqlite_store::upsert_node(const node_record& n) {
  auto result = pack_column(n.result);
  auto err = pack_column(n.error);
  return impl_->write(
      impl_->upsert_node.get(),
      [&](binder& b) {
        b.text(n.workflow_id)
            .integer(n.node)
            .text(n.task)
            .state(n.state)
            .integer(n.attempt)
            .packed(result)
            .packed(err)
            .integer(n.due_at)
            .integer(n.updated_at)
            .integer(n.retry_base);
      },
      [&n] { return "upsert node " + std::to_string(n.node) + " of workflow " + n.workflow_id; });
}

expected<void> sqlite_store::upsert_progress(const progress_record& p) {
  const auto& r = p.progress;
  return impl_->write(
      impl_->upsert_progress.get(),
      [&](binder& b) {
        b.text(p.workflow_id).integer(p.node).text(p.task).integer(p.attempt);
        r.done ? b.integer(*r.done) : b.null();
        r.total ? b.integer(*r.total) : b.null();
        b.text(r.message);
        r.state.empty() ? b.null() : b.text(r.state);
        b.integer(p.updated_at);
      },
      [&p] { return "store progress of node " + std::to_string(p.node) + " of workflow " + p.workflow_id; });
}

expected<void> sqlite_store::insert_attempt(const attempt_record& a) {
  return impl_->write(
      impl_->insert_attempt.get(),
      [&a](binder& b) {
        b.text(a.workflow_id)
            .integer(a.node)
            .integer(a.attempt)
            .text(a.error_type)
            .text(a.error_message)
            .integer(a.finished_at);
      },
      [&a] {
        return "insert attempt " + std::to_string(a.attempt) + " of node " + std::to_string(a.node) + " of workflow " +
               a.workflow_id;
      });
}

expected<void> sqlite_store::insert_replacement(const replacement_record& r) {
  auto packed_canvas = pack_column(r.canvas);
  return impl_->write(
      impl_->insert_replacement.get(),
      [&](binder& b) {
        b.text(r.workflow_id).integer(r.node).integer(r.attempt).integer(r.first_node).packed(packed_canvas);
        b.integer(r.created_at);
      },
      [&r] { return "insert replacement of node " + std::to_string(r.node) + " of workflow " + r.workflow_id; });
}

expected<std::vector<replacement_record>> sqlite_store::replacements_of(const std::string& workflow_id) {
  return impl_->query<std::vector<replacement_record>>(
      impl_->replacements_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_replacement,
      [&workflow_id] { return "read replacements of workflow " + workflow_id; });
}

expected<void> sqlite_store::put_idempotency_key(const std::string& key, const value& result,
                                                 const std::string& workflow_id, std::int32_t node, epoch_ms at) {
  auto packed_result = pack_column(result);
  return impl_->write(
      impl_->put_idempotency_key.get(),
      [&](binder& b) { b.text(key).packed(packed_result).text(workflow_id).integer(node).integer(at); },
      [&key] { return "record idempotency key '" + key + "'"; });
}

expected<std::int64_t> sqlite_store::insert_dead_letter(const dead_letter_record& d) {
  auto done = impl_->write(
      impl_->insert_dead_letter.get(),
      [&d](binder& b) {
        b.text(d.message_id)
            .text(d.workflow_id)
            .integer(d.node)
            .text(d.task)
            .text(d.reason)
            .text(d.error)
            .integer(d.attempts)
            .blob(d.envelope)
            .integer(d.created_at)
            .integer(d.replayed_at);
      },
      [&d] { return "insert dead letter for message '" + d.message_id + "' (reason " + d.reason + ")"; });
  if (!done) {
    return done.error();
  }
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(impl_->db.get()));
}

expected<void> sqlite_store::mark_dead_letter_replayed(std::int64_t id, epoch_ms at) {
  return impl_->update(
      impl_->mark_dead_letter_replayed.get(), [id, at](binder& b) { b.integer(id).integer(at); },
      [id] { return "mark dead letter " + std::to_string(id) + " replayed"; });
}

}  // namespace trellis::detail
