#include "trellis/store/store_reports.hpp"

#include <map>
#include <utility>

namespace trellis::detail {

namespace {

/// Sets a status node row's `progress` ({done, total, message}, or null for
/// a report without counts) and `custom_state` (a name or null).
void add_progress(value::map& row, const task_progress& p) {
  if (p.done) {
    row["progress"] = value::map{{"done", *p.done},
                                 {"total", p.total ? value(*p.total) : value{}},
                                 {"message", p.message}};
  }
  if (!p.state.empty()) {
    row["custom_state"] = p.state;
  }
}

}  // namespace

expected<std::optional<value::map>> status_document(sqlite_store& store, const std::string& id) {
  auto wf = store.find_workflow(id);
  if (!wf) {
    return wf.error();
  }
  if (!*wf) {
    return std::optional<value::map>{};
  }
  auto node_rows = store.nodes_of(id);
  if (!node_rows) {
    return node_rows.error();
  }
  auto attempt_rows = store.attempts_of(id);
  if (!attempt_rows) {
    return attempt_rows.error();
  }
  auto progress_rows = store.progress_of(id);
  if (!progress_rows) {
    return progress_rows.error();
  }
  std::map<std::int32_t, const progress_record*> progress;
  for (const auto& p : *progress_rows) {
    progress[p.node] = &p;
  }
  // Rows are built as named maps and moved into place: GCC 12 reports a
  // false -Wmaybe-uninitialized for a map temporary pushed into a vector.
  std::map<std::int32_t, value> nodes_by_id;
  for (const auto& n : *node_rows) {
    value::map row{{"node", n.node},
                   {"task", n.task},
                   {"state", std::string{to_string(n.state)}},
                   {"attempt", n.attempt},
                   {"error", n.error},
                   {"progress", value{}},
                   {"custom_state", value{}}};
    if (auto p = progress.find(n.node); p != progress.end()) {
      const auto& reported = *p->second;
      if (reported.attempt > n.attempt && !is_terminal(n.state)) {
        // A later attempt runs (the row still says what the last one left).
        row["state"] = std::string{to_string(node_state::started)};
        row["attempt"] = reported.attempt;
        row["error"] = value{};
      }
      if (reported.attempt >= n.attempt) {  // else an earlier attempt's
        add_progress(row, reported.progress);
      }
      progress.erase(p);
    }
    nodes_by_id[n.node] = value(std::move(row));
  }
  // A first attempt that reports has no node row yet: it runs.
  for (const auto& [node, p] : progress) {
    value::map row{{"node", node},
                   {"task", p->task},
                   {"state", std::string{to_string(node_state::started)}},
                   {"attempt", p->attempt},
                   {"error", value{}},
                   {"progress", value{}},
                   {"custom_state", value{}}};
    add_progress(row, p->progress);
    nodes_by_id[node] = value(std::move(row));
  }
  value::array nodes;
  nodes.reserve(nodes_by_id.size());
  for (auto& [node, row] : nodes_by_id) {
    nodes.push_back(std::move(row));
  }
  value::array attempts(attempt_rows->size());
  for (std::size_t i = 0; i < attempt_rows->size(); ++i) {
    const auto& a = (*attempt_rows)[i];
    value::map row{{"node", a.node}, {"attempt", a.attempt}, {"type", a.error_type}, {"message", a.error_message}};
    attempts[i] = std::move(row);
  }
  const auto& w = **wf;
  return std::optional<value::map>{value::map{{"id", w.id},
                                              {"state", std::string{to_string(w.state)}},
                                              {"result", w.result},
                                              {"error", w.error},
                                              {"nodes", std::move(nodes)},
                                              {"failed_attempts", std::move(attempts)}}};
}

expected<value::array> dead_letter_rows(sqlite_store& store) {
  auto letters = store.dead_letters(true);
  if (!letters) {
    return letters.error();
  }
  value::array rows(letters->size());
  for (std::size_t i = 0; i < letters->size(); ++i) {
    const auto& d = (*letters)[i];
    value::map row{{"id", d.id},
                   {"reason", d.reason},
                   {"error", d.error},
                   {"workflow_id", d.workflow_id},
                   {"node", d.node},
                   {"task", d.task},
                   {"attempts", d.attempts},
                   {"message_id", d.message_id},
                   {"bytes", static_cast<std::int64_t>(d.envelope.size())},
                   {"created_at", d.created_at},
                   {"replayed", d.replayed_at != 0}};
    rows[i] = std::move(row);
  }
  return rows;
}

}  // namespace trellis::detail
