// Restoring after a (re)start, and the graph cache. A new dispatcher reads
// every unfinished workflow from the store, replays its node rows into a
// graph, schedules the due times again and publishes what is ready, except
// what the broker still holds (`transport::work_already_out`). The cache
// keeps graphs up to `max_cached_nodes` and rebuilds an evicted one from the
// store, without publishing anything again (decision 0011). Kept together
// because both rebuild a graph from its stored rows (`replay_stored`).

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include <iterator>

namespace trellis::detail {

void dispatcher_logic::restore(const workflow_record& rec) {
  auto parsed = canvas_from_value(rec.canvas, st_.cfg.limits);
  if (!parsed) {
    // Stored by an older build under other limits, or damaged: fail it loudly
    // rather than guess.
    auto err = error_value("store_corrupt", "stored canvas does not parse: " + parsed.error().message());
    check(st_.cfg.store->finish_workflow(rec.id, node_state::failure, value{}, err, now_ms()));
    changed();
    st_.finished.push_back(workflow_outcome{rec.id, node_state::failure, value{}, err});
    return;
  }
  st_.evicted.erase(rec.id);
  auto replayed = replay_stored(rec.id, std::move(*parsed));
  auto& aw = replayed.aw;
  auto& fx = replayed.fx;
  const auto& by_node = replayed.rows;
  // Ready leaves with a pending retry or countdown wait for their due time;
  // the others are published again (at least once; duplicates are harmless).
  std::vector<node_id> now;
  for (auto leaf : fx.ready) {
    auto row = by_node.find(leaf);
    if (row != by_node.end() && row->second.due_at > 0 && !is_terminal(row->second.state)) {
      schedule(rec.id, aw, leaf, row->second.attempt + 1, row->second.due_at);
      st_.republish_when_due.insert(rec.id + ":" + std::to_string(leaf) + ":" +
                                    std::to_string(row->second.attempt + 1));  // task_envelope's id
    } else {
      now.push_back(leaf);
    }
  }
  fx.ready = std::move(now);
  auto published = fx.ready.size();
  // Most of these tasks went out before the restart and may still be queued
  // or have run already (an outcome not committed yet). Those the broker
  // still holds, as a task or as an outcome, are left to it (`already_out`,
  // read by restore_all). The rest go out marked republished: one message
  // each under the task's own id, the id their first copy had when it went
  // alone, so that the broker drops them within its dedup window. Should a
  // copy still meet its first (the broker could not be read), the worker
  // pool runs one when both meet in one worker (task_claims in
  // worker_pool.cpp), and the once-only guard keeps the state right.
  st_.republishing = true;
  process(rec.id, aw, fx);
  st_.republishing = false;
  // Encoded task messages wait in the outbox until the commit: counting them
  // bounds a batch of many large workflows (a restart restoring a million
  // queued tasks) as well as one of many small changes.
  changed(published);
}

dispatcher_logic::replayed_graph dispatcher_logic::replay_stored(const std::string& wf, canvas c) {
  std::unordered_map<node_id, node_record> rows;
  for (auto& r : check(st_.cfg.store->nodes_of(wf))) {
    rows.emplace(r.node, std::move(r));
  }
  auto& aw = cache(wf, std::move(c));
  // Before the replay, so that the ids of their nodes are those their rows have.
  auto before = aw.graph.size();
  attach_stored_replacements(wf, aw.graph);
  st_.cached_nodes += aw.graph.size() - before;
  auto fx = aw.graph.start([&](node_id id) -> std::optional<known_outcome> {
    auto row = rows.find(id);
    if (row == rows.end()) {
      return std::nullopt;
    }
    const auto& r = row->second;
    return known_outcome{r.state, r.attempt, r.result, r.error, r.retry_base};
  });
  return replayed_graph{aw, std::move(fx), std::move(rows)};
}

active_workflow& dispatcher_logic::cache(const std::string& wf, canvas c) {
  auto [it, inserted] = st_.active.try_emplace(wf, wf, std::move(c));
  auto& aw = it->second;
  if (inserted) {
    aw.incarnation = st_.next_incarnation++;
    aw.lru = st_.lru.insert(st_.lru.end(), wf);
    st_.cached_nodes += aw.graph.size();
  }
  return aw;
}

void dispatcher_logic::uncache(const std::string& wf) {
  auto it = st_.active.find(wf);
  if (it == st_.active.end()) {
    return;
  }
  if (it->second.timers == 0) {
    st_.lru.erase(it->second.lru);
  }
  st_.cached_nodes -= it->second.graph.size();
  st_.active.erase(it);
}

active_workflow* dispatcher_logic::find_active(const std::string& wf) {
  if (auto it = st_.active.find(wf); it != st_.active.end()) {
    if (it->second.timers == 0) {
      st_.lru.splice(st_.lru.end(), st_.lru, it->second.lru);  // most recently used now
    }
    return &it->second;
  }
  return st_.evicted.count(wf) != 0 ? rebuild(wf) : nullptr;
}

active_workflow* dispatcher_logic::rebuild(const std::string& wf) {
  st_.evicted.erase(wf);
  st_.cfg.stats->add(counter::graph_rebuilds, "", "");
  auto rec = check(st_.cfg.store->find_workflow(wf));
  if (!rec || is_terminal(rec->state)) {
    return nullptr;
  }
  auto parsed = canvas_from_value(rec->canvas, st_.cfg.limits);
  if (!parsed) {
    // It parsed when it was cached; only a damaged store gets here. Restore
    // fails it loudly, as at startup.
    open_batch();
    restore(*rec);
    return nullptr;
  }
  auto replayed = replay_stored(wf, std::move(*parsed));
  auto& aw = replayed.aw;
  const auto& by_node = replayed.rows;
  // Unlike a restart, nothing is published again: the graph was evicted
  // with no unsent message and no due time pending, so every leaf that is
  // ready now was dispatched already, as the attempt after its stored row's
  // (the first when it has none). That keeps the once-only guard exact.
  for (auto leaf : replayed.fx.ready) {
    auto row = by_node.find(leaf);
    aw.graph.mark_dispatched(leaf, row == by_node.end() ? 1 : row->second.attempt + 1);
  }
  return &aw;
}

void dispatcher_logic::evict_idle(bool keep_newest) {
  // Only a committed, fully published state may be dropped: then the store
  // holds all of it. Messages the broker refused keep every graph cached.
  if (st_.in_batch || st_.cached_nodes <= st_.cfg.max_cached_nodes || !st_.unsent.empty()) {
    return;
  }
  auto end = keep_newest && !st_.lru.empty() ? std::prev(st_.lru.end()) : st_.lru.end();
  for (auto i = st_.lru.begin(); i != end && st_.cached_nodes > st_.cfg.max_cached_nodes;) {
    auto& wf = *i++;
    auto it = st_.active.find(wf);  // unpinned: no due message pending
    auto id = wf;
    st_.cached_nodes -= it->second.graph.size();
    st_.active.erase(it);
    st_.lru.erase(std::prev(i));
    st_.evicted.insert(std::move(id));
    st_.cfg.stats->add(counter::graph_evictions, "", "");
  }
}

void dispatcher_logic::restore_all() {
  auto unfinished = check(st_.cfg.store->unfinished_workflows());
  if (unfinished.empty()) {
    return;
  }
  // What the broker still holds is not published again. Without an answer
  // (the broker is away) everything ready is: a task may then run twice,
  // but none is lost.
  if (auto out = st_.cfg.bus->work_already_out(st_.cfg.partition)) {
    st_.already_out = std::move(*out);
  }
  open_batch();
  for (const auto& rec : unfinished) {
    st_.restored.push_back(rec.id);
    restore(rec);
  }
  // Kept only for the attempts due later, which on_due publishes then.
  for (auto i = st_.already_out.begin(); i != st_.already_out.end();) {
    i = st_.republish_when_due.count(*i) != 0 ? std::next(i) : st_.already_out.erase(i);
  }
}

}  // namespace trellis::detail
