// From a ready leaf to a published task message: what a ready leaf needs
// (an idempotent step's stored result, a countdown or an eta, or a
// dispatch), the task envelope built from the node and its registration
// defaults, the outbox of the open batch, and the unsent lists that are
// published after the commit and kept, unchanged and in order, while the
// broker refuses them. Kept apart from the batch and the outcomes because it
// is the only part that encodes and publishes task messages.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/detail/value_codec.hpp"

#include <algorithm>

namespace trellis::detail {

const task_defaults& dispatcher_logic::defaults_of(const std::string& task) const {
  static const task_defaults fallback{};
  auto i = st_.cfg.defaults.find(task);
  return i == st_.cfg.defaults.end() ? fallback : i->second;
}

std::string dispatcher_logic::queue_of(const signature& sig) const {
  return sig.options().queue ? *sig.options().queue : defaults_of(sig.task()).queue;
}

retry_policy dispatcher_logic::policy_of(const signature& sig) const {
  return sig.options().retry ? *sig.options().retry : defaults_of(sig.task()).retry;
}

void dispatcher_logic::publish_unsent() {
  auto now = st_.cfg.clock->now_steady();
  for (auto i = st_.unsent.begin(); i != st_.unsent.end();) {
    auto& [queue, lists] = *i;
    while (!lists.empty()) {
      auto& list = lists.front();
      auto n = list.tasks.size();
      std::vector<std::chrono::steady_clock::time_point> ready;
      ready.reserve(n);
      for (const auto& m : list.tasks) {
        ready.push_back(m.ready_at);
      }
      list.attempted = true;
      if (auto r = st_.cfg.bus->publish_tasks(queue, list.tasks); !r) {
        // The broker is away. The committed rows already say these nodes
        // are ready, so nothing is lost; try again with backoff (this list
        // first, unchanged), and a restart would publish them from the
        // store anyway.
        if (!st_.republish_scheduled) {
          st_.republish_scheduled = true;
          self_->delayed_send(self_, st_.republish_backoff.next(), flush_atom::value);
        }
        break;
      }
      for (auto t : ready) {
        st_.cfg.stats->observe(histogram::publish_latency, queue, "", std::chrono::duration<double>(now - t).count());
      }
      st_.cfg.stats->add(counter::tasks_published, queue, "", n);
      st_.republish_backoff.reset();
      lists.pop_front();
    }
    i = lists.empty() ? st_.unsent.erase(i) : std::next(i);
  }
  if (st_.unsent.empty()) {
    st_.republish_scheduled = false;
  }
}

envelope dispatcher_logic::task_envelope(const std::string& wf, const active_workflow& aw, node_id leaf,
                                         std::int32_t attempt) const {
  const auto& n = aw.graph.node(leaf);
  const auto& sig = *n.sig;
  envelope e;
  e.type = envelope_type::task;
  e.id = wf + ":" + std::to_string(leaf) + ":" + std::to_string(attempt);
  e.workflow_id = wf;
  e.node = leaf;
  e.attempt = attempt;
  e.task = sig.task();
  e.queue = queue_of(sig);
  e.args = aw.graph.arguments_of(leaf);
  e.kwargs = sig.kwargs();
  e.options["idempotency_key"] =
      sig.options().idempotency_key ? *sig.options().idempotency_key : wf + "/" + std::to_string(leaf);
  auto limit = sig.options().time_limit ? sig.options().time_limit : defaults_of(sig.task()).time_limit;
  if (limit) {
    e.options["time_limit_ms"] = static_cast<std::int64_t>(limit->count());
  }
  auto soft = sig.options().soft_time_limit ? sig.options().soft_time_limit : defaults_of(sig.task()).soft_time_limit;
  if (soft) {
    e.options["soft_time_limit_ms"] = static_cast<std::int64_t>(soft->count());
  }
  // Enforced by the worker, when the handler is about to start.
  auto rate = sig.options().rate_limit ? sig.options().rate_limit : defaults_of(sig.task()).rate_limit;
  if (rate) {
    e.options["rate_limit"] = rate->to_string();
  }
  if (sig.options().chunk) {
    // The worker calls the handler once per item of the chunk (`chunks`).
    e.options["chunk"] = true;
  }
  e.sent_at = now_ms();
  if (sig.options().expires) {
    // Measured from publication of this attempt; the worker revokes it if it
    // has not started by then.
    e.options["expires_at_ms"] = e.sent_at + static_cast<std::int64_t>(sig.options().expires->count());
  }
  return e;
}

void dispatcher_logic::dispatch(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt,
                                graph_effects& fx) {
  aw.graph.mark_dispatched(leaf, attempt);
  if (st_.republishing && !st_.already_out.empty() &&
      st_.already_out.erase(wf + ":" + std::to_string(leaf) + ":" + std::to_string(attempt)) > 0) {
    return;  // its first copy is still out: it runs, or ran, from there
  }
  auto e = task_envelope(wf, aw, leaf, attempt);
  auto bytes = encode(e);
  // Its own arguments were checked at submit time; an input from previous
  // steps (a chord body's header results) only now.
  if (auto size = packed_size(e.args) + packed_size(e.kwargs); size > st_.cfg.limits.max_argument_bytes) {
    fail_oversized(wf, aw, e, bytes,
                   "the arguments of " + e.task + " are " + std::to_string(size) +
                       " bytes encoded, beyond max_argument_bytes (" +
                       std::to_string(st_.cfg.limits.max_argument_bytes) +
                       "); pass a reference to large data (a key, a path, a URL) or raise the limit",
                   fx);
    return;
  }
  if (bytes.size() > st_.message_limit) {
    fail_oversized(wf, aw, e, bytes,
                   "the task message of " + e.task + " is " + std::to_string(bytes.size()) +
                       " bytes encoded, beyond the " + std::to_string(st_.message_limit) +
                       " bytes one message may carry; pass a reference to large data (a key, a path, a URL) "
                       "instead",
                   fx);
    return;
  }
  auto priority = aw.graph.node(leaf).sig->options().priority.value_or(0);
  auto& box = st_.outbox[e.queue];
  box.push_back(outgoing_task{e.id, std::move(bytes), priority, st_.cfg.clock->now_steady(), st_.republishing, e.task});
  if (st_.publish_early_every != 0 && box.size() >= st_.publish_early_every) {
    st_.unsent[e.queue].push_back({std::move(box), false});
    box.clear();
    publish_unsent();
  }
}

void dispatcher_logic::fail_oversized(const std::string& wf, active_workflow& aw, const envelope& task,
                                      const std::string& bytes, const std::string& message, graph_effects& fx) {
  // Published, it would be refused on every try and hold up its queue; and
  // the same inputs make the same message on every attempt. So the step
  // fails at once, without retry, as a handler's rejection does (a chord
  // body whose header results add up past the limit gets here).
  std::string type{to_string(errc::payload_too_large)};
  auto err = error_value(type, message);
  const auto& n = aw.graph.node(task.node);
  check(st_.cfg.store->upsert_node(row_of(wf, task.node, n, node_state::failure, value{}, err, 0, now_ms())));
  changed();
  dead_letter(type, type + ": " + message, bytes, task.id, wf, task.node, task.task, task.attempt);
  aw.graph.fail(task.node, task.attempt, err, fx);
  st_.cfg.stats->add(counter::tasks_failed, task.queue, task.task);
  announce(lifecycle_kind::failed, wf, task.node, task.task, task.attempt, err);
}

void dispatcher_logic::ready(const std::string& wf, active_workflow& aw, node_id leaf, graph_effects& fx) {
  const auto& n = aw.graph.node(leaf);
  const auto& sig = *n.sig;
  if (sig.options().idempotency_key) {
    // A step whose key already succeeded returns the stored result without
    // running. The lookup sees this batch's own uncommitted writes too.
    if (auto stored = check(st_.cfg.store->find_idempotency_key(*sig.options().idempotency_key)); stored) {
      aw.graph.succeed(leaf, n.attempt, *stored, fx);
      // Read again: the success may have grown the graph, which moves its nodes.
      check(st_.cfg.store->upsert_node(
          row_of(wf, leaf, aw.graph.node(leaf), node_state::success, *stored, value{}, 0, now_ms())));
      changed();
      st_.cfg.stats->add(counter::idempotent_hits, queue_of(sig), sig.task());
      return;
    }
  }
  // A countdown or an eta still to come is a row with a due time, so a
  // crash does not lose it; an eta already past publishes at once.
  std::int64_t due = 0;
  if (n.attempt == 0 && sig.options().countdown && sig.options().countdown->count() > 0) {
    due = now_ms() + sig.options().countdown->count();
  } else if (n.attempt == 0 && sig.options().eta && sig.options().eta->time_since_epoch().count() > now_ms()) {
    due = sig.options().eta->time_since_epoch().count();
  }
  if (due > 0) {
    check(st_.cfg.store->upsert_node(row_of(wf, leaf, n, node_state::received, value{}, value{}, due, now_ms())));
    changed();
    schedule(wf, aw, leaf, 1, due);
    return;
  }
  dispatch(wf, aw, leaf, n.attempt + 1, fx);
}

}  // namespace trellis::detail
