// The store's reads (sqlite_store.hpp, "reads"): each one prepared
// statement, bound, stepped and its rows read back (detail/sqlite_access.hpp).

#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/detail/sqlite_access.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

expected<std::optional<workflow_record>> sqlite_store::find_workflow(const std::string& id) {
  return impl_->query<std::optional<workflow_record>>(
      impl_->find_workflow.get(), [&id](binder& b) { b.text(id); }, read_workflow,
      [&id] { return "find workflow " + id; });
}

expected<std::optional<workflow_record>> sqlite_store::find_workflow_by_key(const std::string& submit_key) {
  return impl_->query<std::optional<workflow_record>>(
      impl_->find_workflow_by_key.get(), [&submit_key](binder& b) { b.text(submit_key); }, read_workflow,
      [&submit_key] { return "find workflow by submit key '" + submit_key + "'"; });
}

expected<std::vector<workflow_record>> sqlite_store::unfinished_workflows() {
  return impl_->query<std::vector<workflow_record>>(
      impl_->unfinished_workflows.get(), no_parameters, read_workflow,
      [this] { return "list unfinished workflows of store '" + impl_->path + "'"; });
}

expected<std::vector<workflow_summary>> sqlite_store::recent_workflows(std::size_t limit,
                                                                       std::optional<node_state> state,
                                                                       const std::optional<workflow_cursor>& after) {
  // SQLite reads a negative LIMIT as none; a size_t past INT64_MAX is one.
  auto bound = static_cast<std::int64_t>(limit);
  auto wanted = state ? static_cast<std::int64_t>(*state) : std::int64_t{-1};
  return impl_->query<std::vector<workflow_summary>>(
      impl_->recent_workflows.get(),
      [&](binder& b) {
        b.integer(bound).integer(wanted);
        if (after) {
          b.integer(after->created_at).text(after->id);
        } else {
          b.null().null();
        }
      },
      read_workflow_summary, [this] { return "list recent workflows of store '" + impl_->path + "'"; });
}

expected<std::vector<node_record>> sqlite_store::nodes_of(const std::string& workflow_id) {
  return impl_->query<std::vector<node_record>>(
      impl_->nodes_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_node,
      [&workflow_id] { return "read nodes of workflow " + workflow_id; });
}

expected<std::vector<progress_record>> sqlite_store::progress_of(const std::string& workflow_id) {
  return impl_->query<std::vector<progress_record>>(
      impl_->progress_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_progress,
      [&workflow_id] { return "read progress of workflow " + workflow_id; });
}

expected<std::vector<attempt_record>> sqlite_store::attempts_of(const std::string& workflow_id) {
  return impl_->query<std::vector<attempt_record>>(
      impl_->attempts_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_attempt,
      [&workflow_id] { return "read attempts of workflow " + workflow_id; });
}

expected<std::optional<value>> sqlite_store::find_idempotency_key(const std::string& key) {
  auto what = [&key] { return "idempotency key '" + key + "'"; };
  return impl_->query<std::optional<value>>(
      impl_->find_idempotency_key.get(), [&key](binder& b) { b.text(key); },
      [&what](sqlite3_stmt* stmt) { return column_value(stmt, 0, what); }, [&what] { return "find " + what(); });
}

expected<std::vector<dead_letter_record>> sqlite_store::dead_letters(bool include_replayed) {
  return impl_->query<std::vector<dead_letter_record>>(
      impl_->dead_letters.get(), [include_replayed](binder& b) { b.integer(include_replayed ? 1 : 0); },
      read_dead_letter, [this] { return "list dead letters of store '" + impl_->path + "'"; });
}

expected<std::optional<dead_letter_record>> sqlite_store::find_dead_letter(std::int64_t id) {
  return impl_->query<std::optional<dead_letter_record>>(
      impl_->find_dead_letter.get(), [id](binder& b) { b.integer(id); }, read_dead_letter,
      [id] { return "find dead letter " + std::to_string(id); });
}

}  // namespace trellis::detail
