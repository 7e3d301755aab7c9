// The store's retention operations (sqlite_store.hpp, "retention"): finished
// workflows listed by age and deleted one by one with everything they own,
// idempotency keys and dead letters deleted by age in bounded batches. The
// dispatcher runs them on its expiry timer, the CLI's `prune` and `forget`
// by hand (docs/operations.md, "Retention"). Kept apart from the hot writes
// because they run rarely and in a different rhythm.

#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/detail/sqlite_access.hpp"

#include <sqlite3.h>

#include <limits>

namespace trellis::detail {

namespace {

/// SQLite's LIMIT is a signed 64-bit integer; a larger count means "all".
std::int64_t sql_limit(std::size_t limit) {
  return limit > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(limit);
}

}  // namespace

void sqlite_store::impl::prepare_retention_statements() {
  auto p = [this](std::string_view sql) {
    return prepare(db.get(), sql, "prepare retention statements for store '" + path + "'", true);
  };
  // Both repeat the partial index's WHERE clause (state IN (3, 4, 6)) so the
  // planner uses it: a sweep reads only the rows it deletes.
  expired_workflows =
      p("SELECT id FROM workflows WHERE state IN (3, 4, 6) AND finished_at < ?1 ORDER BY finished_at LIMIT ?2");
  delete_finished_workflow = p("DELETE FROM workflows WHERE id = ?1 AND state IN (3, 4, 6)");
  // Each table's primary key starts with workflow_id: these are range deletes.
  delete_nodes = p("DELETE FROM nodes WHERE workflow_id = ?1");
  delete_attempts = p("DELETE FROM attempts WHERE workflow_id = ?1");
  delete_progress = p("DELETE FROM node_progress WHERE workflow_id = ?1");
  delete_replacements = p("DELETE FROM node_replacements WHERE workflow_id = ?1");
  prune_idempotency_keys =
      p("DELETE FROM idempotency_keys WHERE rowid IN "
        "(SELECT rowid FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)");
  prune_dead_letters =
      p("DELETE FROM dead_letters WHERE id IN "
        "(SELECT id FROM dead_letters WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)");
}

expected<std::vector<std::string>> sqlite_store::expired_workflows(epoch_ms before, std::size_t limit) {
  return impl_->query<std::vector<std::string>>(
      impl_->expired_workflows.get(), [&](binder& b) { b.integer(before).integer(sql_limit(limit)); },
      [](sqlite3_stmt* stmt) -> expected<std::string> { return column_text(stmt, 0); },
      [before] { return "list workflows finished before " + std::to_string(before); });
}

expected<std::size_t> sqlite_store::delete_workflow(const std::string& id) {
  auto what = [&id] { return "delete workflow " + id; };
  auto bind_id = [&id](binder& b) { b.text(id); };
  if (auto done = impl_->write(impl_->delete_finished_workflow.get(), bind_id, what); !done) {
    return done.error();
  }
  if (sqlite3_changes(impl_->db.get()) == 0) {
    auto held = find_workflow(id);
    if (!held) {
      return held.error();
    }
    if (!*held) {
      return error{errc::not_found, "no workflow with id " + id};
    }
    return error{errc::invalid_workflow, "workflow " + id + " is " + std::string{to_string((*held)->state)} +
                                             ", not finished; only a finished workflow can be forgotten"};
  }
  std::size_t rows = 1;
  for (auto* stmt : {impl_->delete_nodes.get(), impl_->delete_attempts.get(), impl_->delete_progress.get(),
                     impl_->delete_replacements.get()}) {
    if (auto done = impl_->write(stmt, bind_id, what); !done) {
      return done.error();
    }
    rows += static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
  }
  return rows;
}

expected<std::size_t> sqlite_store::prune_idempotency_keys(epoch_ms before, std::size_t limit) {
  auto done = impl_->write(
      impl_->prune_idempotency_keys.get(), [&](binder& b) { b.integer(before).integer(sql_limit(limit)); },
      [before] { return "delete idempotency keys recorded before " + std::to_string(before); });
  if (!done) {
    return done.error();
  }
  return static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
}

expected<std::size_t> sqlite_store::prune_dead_letters(epoch_ms before, std::size_t limit) {
  auto done = impl_->write(
      impl_->prune_dead_letters.get(), [&](binder& b) { b.integer(before).integer(sql_limit(limit)); },
      [before] { return "delete dead letters stored before " + std::to_string(before); });
  if (!done) {
    return done.error();
  }
  return static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
}

}  // namespace trellis::detail
