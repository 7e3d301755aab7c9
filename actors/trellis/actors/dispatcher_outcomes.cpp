// What workers report back: outcome events (success, failure, retry,
// rejection) and lost task messages applied to the graphs once each, the
// retry policy deciding between a retry and a failure, dead letters for what
// cannot be applied, and the workflow settled (finished and uncached) when
// its root is done. Kept apart because this is where the once-only rules
// live: a duplicate or stale outcome changes nothing.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/log.hpp"
#include "trellis/transport/partition.hpp"

namespace trellis::detail {

namespace {

/// The most bytes of an error message a failure warning carries: enough to
/// recognise the error, bounded so that a workflow failing many times does
/// not write a handler's whole output each time (the store keeps it all).
constexpr std::size_t failure_log_bytes = 200;

}  // namespace

void dispatcher_logic::log_failed_attempt(const envelope& env, const std::string& task, const std::string& next) const {
  if (!log::enabled(log::level::warn)) {
    return;
  }
  log::write(log::level::warn,
             "attempt " + std::to_string(env.attempt) + " of task " + task + " failed: " + env.error_type + ": " +
                 log::cut(env.error_message, failure_log_bytes) + "; " + next,
             log::fields{env.workflow_id, env.node, task, env.error_type, env.attempt});
}

void dispatcher_logic::process(const std::string& wf, active_workflow& aw, graph_effects& fx) {
  // `ready` may complete nodes (idempotency hits) and so append to fx.ready.
  for (std::size_t i = 0; i < fx.ready.size(); ++i) {
    ready(wf, aw, fx.ready[i], fx);
  }
  // Maps whose input arrived grew the graph: stored in this batch, as a
  // handler's replacement is, so a restore attaches them at the same ids.
  for (auto id : fx.expanded) {
    check(st_.cfg.store->insert_replacement(replacement_record{wf, id, 0, aw.graph.node(id).replacement,
                                                               to_value(aw.graph.replacement_canvas(id)), now_ms()}));
    changed();
  }
  st_.cached_nodes += fx.added_nodes;
  fx.added_nodes = 0;
  // A replaced step ended with its replacement: its row says so, for
  // `status` (a restore goes through the replacement, not this row).
  for (auto id : fx.replaced_done) {
    const auto& n = aw.graph.node(id);
    check(st_.cfg.store->upsert_node(row_of(wf, id, n, n.state, n.result, n.error, 0, now_ms())));
    changed();
  }
  // Callbacks that will not run: their rows say so (REVOKED, `not_run`),
  // for `status`. A restore skips them again by the same rule. One that did
  // run, in the life of the workflow before a dead-letter replay reopened
  // it (a link_error of the step that failed then), keeps the row of that
  // run: its effect happened, and the record must not say otherwise.
  if (!fx.skipped.empty()) {
    std::unordered_map<std::int32_t, node_state> stored;
    for (const auto& r : check(st_.cfg.store->nodes_of(wf))) {
      stored.emplace(r.node, r.state);
    }
    for (auto id : fx.skipped) {
      auto ran = stored.find(id);
      if (ran != stored.end() && (ran->second == node_state::success || ran->second == node_state::failure)) {
        continue;
      }
      const auto& n = aw.graph.node(id);
      check(st_.cfg.store->upsert_node(row_of(wf, id, n, n.state, value{}, n.error, 0, now_ms())));
    }
    changed(fx.skipped.size());
    fx.skipped.clear();
  }
  if (fx.finished) {
    // The main canvas's state and result: callbacks only delay the finish.
    const auto& root = aw.graph.root();
    check(st_.cfg.store->finish_workflow(wf, root.state, root.result, root.error, now_ms()));
    changed();
    st_.finished.push_back(workflow_outcome{wf, root.state, root.result, root.error});
    uncache(wf);  // `aw` dies here; callers must not touch it after process()
  }
}

void dispatcher_logic::dead_letter(const std::string& reason, const std::string& error_text, const std::string& bytes,
                                   const std::string& message_id, const std::string& wf, std::int32_t node,
                                   const std::string& task, std::int32_t attempts, const std::string& error_type) {
  if (log::enabled(log::level::warn)) {
    log::fields f;
    f.workflow = wf;
    if (node >= 0) {
      f.node = node;
    }
    f.task = task;
    f.error_type = error_type.empty() ? reason : error_type;
    if (attempts > 0) {
      f.attempt = attempts;
    }
    log::write(log::level::warn, "dead letter (" + reason + "): " + log::cut(error_text, failure_log_bytes), f);
  }
  open_batch();
  dead_letter_record d;
  d.message_id = message_id;
  d.workflow_id = wf;
  d.node = node;
  d.task = task;
  d.reason = reason;
  d.error = error_text;
  d.attempts = attempts;
  d.envelope = bytes;
  d.created_at = now_ms();
  check(st_.cfg.store->insert_dead_letter(d));
  changed();
  st_.cfg.stats->add(counter::dead_letters, "", task);
  if (!wf.empty()) {  // a message tied to no workflow is no workflow's event
    announce(lifecycle_kind::dead_lettered, wf, node >= 0 ? std::optional<std::int32_t>{node} : std::nullopt, task,
             attempts, error_value(reason, error_text));
  }
}

void dispatcher_logic::apply_outcome(const envelope& env, const std::string& raw, const std::string* lost_task) {
  if (env.status == outcome_status::rejected && env.node < 0) {
    // The worker could not read the task message at all: keep its bytes.
    std::string original = env.payload.is_binary()
                               ? std::string(env.payload.as_binary().bytes.begin(), env.payload.as_binary().bytes.end())
                               : raw;
    dead_letter(env.error_type, env.error_message, original, "", "", -1, env.task, 1);
    return;
  }
  auto* cached = find_active(env.workflow_id);
  if (cached == nullptr && event_partition_of(env.workflow_id, st_.cfg.partitions) != st_.cfg.partition) {
    // A worker with another partition count sent it here; its owner never
    // sees it, so keep it where an operator will.
    dead_letter("wrong_partition",
                "outcome of workflow " + env.workflow_id + " (partition " +
                    std::to_string(event_partition_of(env.workflow_id, st_.cfg.partitions)) + " of " +
                    std::to_string(st_.cfg.partitions) + ") arrived at partition " + std::to_string(st_.cfg.partition) +
                    "; every process of the namespace must use the same --partitions",
                raw, env.id, env.workflow_id, env.node, env.task, env.attempt);
    return;
  }
  if (cached == nullptr) {
    // The workflow already finished: a redelivered outcome changes nothing.
    st_.cfg.stats->add(counter::duplicates, "", env.task);
    return;
  }
  auto& aw = *cached;
  if (env.node < 0 || static_cast<std::size_t>(env.node) >= aw.graph.size() ||
      aw.graph.node(env.node).kind != canvas::kind::task) {
    dead_letter(
        "malformed_envelope",
        "outcome names node " + std::to_string(env.node) + " which workflow " + env.workflow_id + " does not have", raw,
        env.id, env.workflow_id, env.node, env.task, env.attempt);
    return;
  }
  const auto& n = aw.graph.node(env.node);
  const auto& sig = *n.sig;
  auto queue = queue_of(sig);
  graph_effects fx;
  open_batch();
  switch (env.status) {
    case outcome_status::success: {
      if (aw.graph.succeed(env.node, env.attempt, env.payload, fx) != apply_result::applied) {
        st_.cfg.stats->add(counter::duplicates, queue, sig.task());
        return;
      }
      // Read again: the success may have grown the graph (a map over its
      // input expanded, a callback activated), which moves its nodes.
      check(st_.cfg.store->upsert_node(row_of(env.workflow_id, env.node, aw.graph.node(env.node), node_state::success,
                                              env.payload, value{}, 0, now_ms())));
      if (sig.options().idempotency_key) {
        check(st_.cfg.store->put_idempotency_key(*sig.options().idempotency_key, env.payload, env.workflow_id, env.node,
                                                 now_ms()));
      }
      changed();
      st_.cfg.stats->add(counter::tasks_succeeded, queue, sig.task());
      announce(lifecycle_kind::succeeded, env.workflow_id, env.node, sig.task(), env.attempt);
      st_.cfg.stats->observe(histogram::handler_duration, queue, sig.task(),
                             static_cast<double>(env.duration_us) / 1e6);
      break;
    }
    case outcome_status::failure:
    case outcome_status::retry:
    case outcome_status::rejected: {
      // A repeat of a failure already turned into a scheduled retry is a
      // duplicate too: it must not schedule (or count) the retry twice.
      if (n.attempt != env.attempt || is_terminal(n.state) || n.state == node_state::retry) {
        st_.cfg.stats->add(counter::duplicates, queue, sig.task());
        return;
      }
      check(st_.cfg.store->insert_attempt(
          attempt_record{env.workflow_id, env.node, env.attempt, env.error_type, env.error_message, now_ms()}));
      st_.cfg.stats->observe(histogram::handler_duration, queue, sig.task(),
                             static_cast<double>(env.duration_us) / 1e6);
      auto policy = policy_of(sig);
      // A rejection is never retried; a failure only when the policy's
      // filters let its type through (a handler's retry_later always is).
      bool retryable = env.status == outcome_status::retry ||
                       (env.status == outcome_status::failure && policy.retries_type(env.error_type));
      // The budget counts from the last replay, not from the first attempt ever.
      auto used = env.attempt - n.retry_base;
      if (retryable && used <= policy.max_retries) {
        std::uniform_real_distribution<double> unit{0.0, 1.0};
        auto delay = policy.delay_before(used, unit(st_.rng));
        if (env.status == outcome_status::retry && env.payload.is_integer()) {
          delay = std::chrono::milliseconds{env.payload.as_int()};  // ctx.retry_later(reason, countdown)
        }
        aw.graph.schedule_retry(env.node, env.attempt);
        auto due = now_ms() + delay.count();
        check(st_.cfg.store->upsert_node(row_of(env.workflow_id, env.node, n, node_state::retry, value{},
                                                error_value(env.error_type, env.error_message), due, now_ms())));
        changed();
        schedule(env.workflow_id, aw, env.node, env.attempt + 1, due);
        st_.cfg.stats->add(counter::retries, queue, sig.task());
        announce(lifecycle_kind::retried, env.workflow_id, env.node, sig.task(), env.attempt,
                 error_value(env.error_type, env.error_message));
        log_failed_attempt(env, sig.task(),
                           "retry " + std::to_string(used) + " of " + std::to_string(policy.max_retries) + " in " +
                               std::to_string(delay.count()) + " ms");
        return;
      }
      log_failed_attempt(env, sig.task(),
                         env.status == outcome_status::rejected ? std::string{"rejected, not retried"}
                         : retryable                            ? std::string{"no retry left: the node fails"}
                                                                : env.error_type + " is not retried: the node fails");
      auto type = env.status == outcome_status::retry ? std::string{"max_retries_exceeded"} : env.error_type;
      auto err = error_value(type, env.error_message);
      check(st_.cfg.store->upsert_node(
          row_of(env.workflow_id, env.node, n, node_state::failure, value{}, err, 0, now_ms())));
      changed();
      auto reason = env.status == outcome_status::rejected ? env.error_type : std::string{"task_failed"};
      // The dead letter keeps the task message itself (what a replay re-runs),
      // rebuilt exactly as it was published for this attempt; a lost task
      // keeps the bytes the broker gave back.
      auto task_msg = task_envelope(env.workflow_id, aw, env.node, env.attempt);
      if (lost_task != nullptr) {
        reason = "worker lost";
      }
      dead_letter(reason, type + ": " + env.error_message, lost_task != nullptr ? *lost_task : encode(task_msg),
                  task_msg.id, env.workflow_id, env.node, sig.task(), env.attempt, type);
      aw.graph.fail(env.node, env.attempt, err, fx);
      st_.cfg.stats->add(counter::tasks_failed, queue, sig.task());
      announce(lifecycle_kind::failed, env.workflow_id, env.node, sig.task(), env.attempt, err);
      break;
    }
  }
  process(env.workflow_id, aw, fx);
}

void dispatcher_logic::apply_progress(const envelope& env) {
  // Progress is advisory: whatever does not fit the attempt now running is
  // dropped and counted, never dead-lettered (a late report is normal: the
  // outcome may have overtaken it, or the node was revoked meanwhile).
  auto* aw = event_partition_of(env.workflow_id, st_.cfg.partitions) == st_.cfg.partition
                 ? find_active(env.workflow_id)
                 : nullptr;
  const graph_node* n = nullptr;
  if (aw != nullptr && env.node >= 0 && static_cast<std::size_t>(env.node) < aw->graph.size() &&
      aw->graph.node(env.node).kind == canvas::kind::task) {
    n = &aw->graph.node(env.node);
  }
  if (n == nullptr || n->attempt != env.attempt ||
      (n->state != node_state::received && n->state != node_state::started)) {
    // Labelled by the node's task only: a name from the wire would let any
    // sender grow the series without bound.
    st_.cfg.stats->add(counter::progress_ignored, n != nullptr ? queue_of(*n->sig) : std::string{},
                       n != nullptr ? n->sig->task() : std::string{});
    return;
  }
  open_batch();
  progress_record row;
  row.workflow_id = env.workflow_id;
  row.node = env.node;
  row.task = n->sig->task();
  row.attempt = env.attempt;
  row.progress = env.progress;
  row.updated_at = now_ms();
  check(st_.cfg.store->upsert_progress(row));
  changed();
  st_.cfg.stats->add(counter::progress_reports, queue_of(*n->sig), n->sig->task());
}

void dispatcher_logic::on_events(std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens) {
  // Even a batch of duplicates needs a commit point: its events are acked
  // to the transport only after it.
  open_batch();
  st_.events_to_ack.insert(st_.events_to_ack.end(), tokens.begin(), tokens.end());
  for (auto& raw : batch) {
    try {
      on_event(raw);
    } catch (const store_failure&) {
      throw;  // not this event's fault: the dispatcher stops
    } catch (const std::exception& e) {
      // A defect met while applying this one event: keep the event where an
      // operator sees it rather than let it stop (and, redelivered, stop
      // again) the dispatcher.
      dead_letter("internal_error", std::string{"applying this event failed: "} + e.what(), raw, "", "", -1, "", 1);
    }
  }
}

void dispatcher_logic::on_event(const std::string& raw) {
  {
    auto env = decode(raw, envelope_limits{max_outcome_message_bytes(st_.cfg.limits)});
    if (!env) {
      dead_letter(to_string(env.error().code()), env.error().message(), raw, "", "", -1, "", 1);
      return;
    }
    if (env->type == envelope_type::progress) {
      apply_progress(*env);
      return;
    }
    if (env->type == envelope_type::replace) {
      apply_replace(*env, raw);
      return;
    }
    if (env->type != envelope_type::outcome) {
      dead_letter("malformed_envelope",
                  std::string{"expected an outcome on the event stream, got "} + to_string(env->type), raw, env->id,
                  env->workflow_id, env->node, env->task, env->attempt);
      return;
    }
    apply_outcome(*env, raw);
  }
}

void dispatcher_logic::pass_lost(std::uint64_t handle) {
  if (st_.cfg.pass_lost_task) {
    st_.cfg.pass_lost_task(handle);
  }
}

void dispatcher_logic::on_lost(const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
  auto env = decode(bytes, envelope_limits{max_task_message_bytes(st_.cfg.limits)});
  auto what = "delivered " + std::to_string(deliveries) +
              " times and never acknowledged: the worker running it died (or hung past AckWait) every time";
  if (!env || env->type != envelope_type::task) {
    // It names no workflow; partition 0's owner keeps it, as for any
    // unreadable task message.
    if (st_.cfg.partition != 0) {
      pass_lost(handle);
      return;
    }
    auto why = env ? std::string{"; it is not a task message"} : "; it is unreadable: " + env.error().message();
    dead_letter("worker lost", what + why, bytes, "", "", -1, "", deliveries);
    st_.lost_to_discard.push_back(handle);
    return;
  }
  if (partition_of(env->workflow_id, st_.cfg.partitions) != st_.cfg.partition) {
    pass_lost(handle);  // another dispatcher's workflow: its owner hears the same advisory
    return;
  }
  // The lost delivery becomes the failure of its attempt, so the retry
  // policy decides what follows, as for any failure. A stale one (the node
  // moved on) is a duplicate and only dropped from the broker.
  open_batch();
  st_.lost_to_discard.push_back(handle);
  envelope failure;
  failure.type = envelope_type::outcome;
  failure.id = env->id;
  failure.workflow_id = env->workflow_id;
  failure.node = env->node;
  failure.attempt = env->attempt;
  failure.task = env->task;
  failure.queue = env->queue;
  failure.status = outcome_status::failure;
  failure.error_type = "worker_lost";
  failure.error_message = "task message " + env->id + " " + what;
  apply_outcome(failure, bytes, &bytes);
}

}  // namespace trellis::detail
