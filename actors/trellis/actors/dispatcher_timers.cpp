// Due times: a countdown before a task's first attempt and the wait before a
// retry are rows with a due time in the store and a `due` message the
// dispatcher sends itself. The message lives only in the mailbox, so its
// graph is pinned in the cache until it comes; one that comes for a graph
// cached anew since, or for an attempt that moved on, is stale. Kept apart so
// the pinning and the staleness rules sit side by side.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include <algorithm>

namespace trellis::detail {

void dispatcher_logic::schedule(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt,
                                epoch_ms due_at) {
  if (aw.timers++ == 0) {
    st_.lru.erase(aw.lru);  // pinned until its last due message comes
  }
  auto delay = std::chrono::milliseconds{std::max<epoch_ms>(0, due_at - now_ms())};
  self_->delayed_send(self_, delay, due_atom::value, wf, leaf, attempt, aw.incarnation);
}

void dispatcher_logic::on_due(const std::string& wf, std::int32_t node, std::int32_t attempt,
                              std::uint64_t incarnation) {
  bool may_be_out = st_.republish_when_due.erase(wf + ":" + std::to_string(node) + ":" + std::to_string(attempt)) > 0;
  // A graph with a pending due message is never evicted, so one that is not
  // cached (or cached anew since) makes this message stale: its workflow
  // finished, was revoked, or was replayed and scheduled its own again.
  auto it = st_.active.find(wf);
  if (it == st_.active.end() || it->second.incarnation != incarnation) {
    return;
  }
  auto* aw = &it->second;
  if (--aw->timers == 0) {
    aw->lru = st_.lru.insert(st_.lru.end(), wf);  // unpinned, most recently used
  }
  const auto& n = aw->graph.node(node);
  // Only the attempt that was scheduled may start; anything else is stale.
  if (is_terminal(n.state) || n.attempt != attempt - 1) {
    return;
  }
  open_batch();
  graph_effects fx;
  st_.republishing = may_be_out;
  dispatch(wf, *aw, node, attempt, fx);
  st_.republishing = false;
  process(wf, *aw, fx);  // an oversized task message failed its step
}

}  // namespace trellis::detail
