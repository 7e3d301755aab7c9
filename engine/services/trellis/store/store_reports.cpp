#include "trellis/store/store_reports.hpp"

#include <utility>

namespace trellis::detail {

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
  // Rows are built as named maps and moved into place: GCC 12 reports a
  // false -Wmaybe-uninitialized for a map temporary pushed into a vector.
  value::array nodes(node_rows->size());
  for (std::size_t i = 0; i < node_rows->size(); ++i) {
    const auto& n = (*node_rows)[i];
    value::map row{{"node", n.node},
                   {"task", n.task},
                   {"state", std::string{to_string(n.state)}},
                   {"attempt", n.attempt},
                   {"error", n.error}};
    nodes[i] = std::move(row);
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
