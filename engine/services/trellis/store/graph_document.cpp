#include "trellis/store/graph_document.hpp"

#include "trellis/store/store_reports.hpp"
#include "trellis/workflow_graph.hpp"

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace trellis::detail {

namespace {

/// The status document's node rows by node id (they carry the progress and
/// the state of an attempt that runs past its row).
std::unordered_map<std::int64_t, const value::map*> status_rows(const value::map& status) {
  std::unordered_map<std::int64_t, const value::map*> rows;
  auto nodes = status.find("nodes");
  if (nodes == status.end() || !nodes->second.is_array()) {
    return rows;
  }
  for (const auto& n : nodes->second.as_array()) {
    if (n.is_map()) {
      auto id = n.as_map().find("node");
      if (id != n.as_map().end() && id->second.is_integer()) {
        rows[id->second.as_int()] = &n.as_map();
      }
    }
  }
  return rows;
}

value field(const value::map& m, const char* key) {
  auto i = m.find(key);
  return i == m.end() ? value{} : i->second;
}

}  // namespace

expected<std::optional<value::map>> graph_document(sqlite_store& store, const std::string& id,
                                                   const canvas_limits& limits) {
  auto status = status_document(store, id);
  if (!status) {
    return status.error();
  }
  if (!*status) {
    return std::optional<value::map>{};
  }
  auto wf = store.find_workflow(id);
  if (!wf) {
    return wf.error();
  }
  if (!*wf) {  // finished and pruned between the two reads
    return std::optional<value::map>{};
  }
  auto parsed = canvas_from_value((*wf)->canvas, limits);
  if (!parsed) {
    return error{errc::store_corrupt, "workflow " + id + ": stored canvas does not parse: " + parsed.error().message()};
  }
  auto node_rows = store.nodes_of(id);
  if (!node_rows) {
    return node_rows.error();
  }
  std::unordered_map<node_id, const node_record*> by_node;
  for (const auto& r : *node_rows) {
    by_node[r.node] = &r;
  }
  // Replayed as a restore does (stored replacements attached first, in the
  // order they were made), so composite states are the dispatcher's.
  workflow_graph graph{std::move(*parsed), id};
  auto replacements = store.replacements_of(id);
  if (!replacements) {
    return replacements.error();
  }
  for (auto& r : *replacements) {
    auto c = canvas_from_value(r.canvas, limits);
    if (!c || static_cast<node_id>(graph.size()) != r.first_node ||
        graph.attach_replacement(r.node, std::move(*c)) != r.first_node) {
      return error{errc::store_corrupt, "workflow " + id + ": the stored replacement of node " +
                                            std::to_string(r.node) + " does not fit its graph"};
    }
  }
  graph.start([&](node_id n) -> std::optional<known_outcome> {
    auto row = by_node.find(n);
    if (row == by_node.end()) {
      return std::nullopt;
    }
    const auto& r = *row->second;
    return known_outcome{r.state, r.attempt, r.result, r.error, r.retry_base};
  });
  auto rows = status_rows(**status);
  auto count = graph.size();
  auto listed = std::min(count, max_graph_nodes);
  std::vector<node_state> shown(listed, node_state::pending);
  value::array nodes(listed);
  // Children have larger ids than their parent (depth-first numbering), so
  // walking backwards settles every child before its parent.
  for (auto i = static_cast<node_id>(listed) - 1; i >= 0; --i) {
    const auto& n = graph.node(i);
    value::map out{{"id", static_cast<std::int64_t>(i)},
                   {"parent", static_cast<std::int64_t>(n.parent)},
                   {"kind", std::string{to_string(n.kind)}},
                   {"position", static_cast<std::int64_t>(n.position)},
                   {"task", value{}},
                   {"queue", value{}},
                   {"attempt", static_cast<std::int64_t>(n.attempt)},
                   {"updated_at", value{}},
                   {"error", n.error},
                   {"progress", value{}},
                   {"custom_state", value{}}};
    value::array children;
    for (auto c : n.children) {
      children.emplace_back(static_cast<std::int64_t>(c));
    }
    out["children"] = std::move(children);
    // A step that replaced itself (or a map expanded over its input): the
    // root of the canvas whose result becomes its own.
    out["replacement"] = n.replacement >= 0 ? value(static_cast<std::int64_t>(n.replacement)) : value{};
    // Callbacks hanging on the node (roots of their canvases), and on a
    // callback's root which kind it is: "link", "link_error" or null.
    auto ids = [](const std::vector<node_id>& xs) {
      value::array out_ids;
      for (auto x : xs) {
        out_ids.emplace_back(static_cast<std::int64_t>(x));
      }
      return out_ids;
    };
    out["links"] = ids(n.links);
    out["link_errors"] = ids(n.link_errors);
    out["callback"] = n.callback == callback_kind::none   ? value{}
                      : n.callback == callback_kind::link ? value("link")
                                                          : value("link_error");
    auto state = n.state;
    if (n.kind == canvas::kind::task) {
      out["task"] = n.sig->task();
      if (n.sig->options().queue) {
        out["queue"] = *n.sig->options().queue;
      }
      if (auto row = rows.find(i); row != rows.end()) {
        auto named = field(*row->second, "state");
        if (named.is_string()) {
          state = node_state_from_string(named.as_string()).value_or(state);
        }
        out["attempt"] = field(*row->second, "attempt");
        out["error"] = field(*row->second, "error");
        out["progress"] = field(*row->second, "progress");
        out["custom_state"] = field(*row->second, "custom_state");
      }
      if (auto row = by_node.find(i); row != by_node.end()) {
        out["updated_at"] = static_cast<std::int64_t>(row->second->updated_at);
      }
    } else if (!is_terminal(state)) {
      state = node_state::pending;
      auto under = n.children;
      if (n.replacement >= 0) {
        under.push_back(n.replacement);
      }
      for (auto c : under) {
        if (static_cast<std::size_t>(c) < listed && shown[static_cast<std::size_t>(c)] != node_state::pending) {
          state = node_state::started;
        }
      }
    }
    shown[static_cast<std::size_t>(i)] = state;
    out["state"] = std::string{to_string(state)};
    nodes[static_cast<std::size_t>(i)] = value(std::move(out));
  }
  const auto& w = **wf;
  value::map doc{{"id", w.id},
                 {"state", std::string{to_string(w.state)}},
                 {"result", w.result},
                 {"error", w.error},
                 {"key", w.submit_key ? value(*w.submit_key) : value{}},
                 {"created_at", static_cast<std::int64_t>(w.created_at)},
                 {"finished_at", w.finished_at == 0 ? value{} : value(static_cast<std::int64_t>(w.finished_at))},
                 {"node_count", static_cast<std::int64_t>(count)},
                 {"truncated", count > listed},
                 {"nodes", std::move(nodes)},
                 {"failed_attempts", field(**status, "failed_attempts")}};
  return std::optional<value::map>{std::move(doc)};
}

}  // namespace trellis::detail
