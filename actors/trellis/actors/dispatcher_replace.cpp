// A handler that replaced itself with a canvas (Celery's `replace`): the
// `replace` event applied once, its canvas stored with it in the same batch,
// and the stored replacements attached again when a graph is rebuilt from
// the store (docs/decisions/0029-dynamic-expansion.md). Kept apart from
// dispatcher_outcomes.cpp because the canvas is checked here as a
// submission's is.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/submission.hpp"

namespace trellis::detail {

void dispatcher_logic::apply_replace(const envelope& env, const std::string& raw) {
  auto* aw = find_active(env.workflow_id);
  if (aw == nullptr || env.node < 0 || static_cast<std::size_t>(env.node) >= aw->graph.size() ||
      aw->graph.node(env.node).kind != canvas::kind::task) {
    // What the outcome path says about a stray outcome (another partition's,
    // a finished workflow's, a node it does not have) holds for this one.
    envelope as_outcome = env;
    as_outcome.type = envelope_type::outcome;
    as_outcome.payload = value{};
    apply_outcome(as_outcome, raw);
    return;
  }
  // The canvas comes from a handler: checked as strictly as a submission,
  // and against what the workflow may still grow to.
  auto parsed = canvas_from_value(env.payload, st_.cfg.limits);
  std::string problem;
  if (!parsed) {
    problem = parsed.error().message();
  } else if (aw->graph.size() + parsed->task_count() > st_.cfg.limits.max_tasks) {
    problem = "the workflow would grow past max_tasks (" + std::to_string(st_.cfg.limits.max_tasks) + ") tasks";
  } else if (auto ok = check_priorities_honoured(*parsed, st_.cfg.bus->honours_priority()); !ok) {
    problem = ok.error().message();
  }
  if (!problem.empty()) {
    // Never retried: the same handler would build the same canvas.
    envelope refused = env;
    refused.type = envelope_type::outcome;
    refused.status = outcome_status::rejected;
    refused.payload = value{};
    refused.error_type = to_string(errc::invalid_workflow);
    refused.error_message = "the replacement canvas of " + env.task + " is refused: " + problem;
    apply_outcome(refused, raw);
    return;
  }
  const auto& sig = *aw->graph.node(env.node).sig;
  auto queue = queue_of(sig);
  auto task = sig.task();
  open_batch();
  auto first = static_cast<node_id>(aw->graph.size());
  graph_effects fx;
  if (aw->graph.replace(env.node, env.attempt, *parsed, fx) != apply_result::applied) {
    st_.cfg.stats->add(counter::duplicates, queue, task);
    return;
  }
  // In this batch, with the node row: a crash before the commit loses both
  // (the event is redelivered and applied then), one after keeps both (the
  // redelivered event is a duplicate). The canvas is stored normalized, as
  // it was expanded.
  check(st_.cfg.store->insert_replacement(
      replacement_record{env.workflow_id, env.node, env.attempt, first, to_value(*parsed), now_ms()}));
  const auto& n = aw->graph.node(env.node);
  check(st_.cfg.store->upsert_node(
      row_of(env.workflow_id, env.node, n, node_state::started, value{}, value{}, 0, now_ms())));
  changed();
  st_.cfg.stats->observe(histogram::handler_duration, queue, task, static_cast<double>(env.duration_us) / 1e6);
  process(env.workflow_id, *aw, fx);
}

void dispatcher_logic::attach_stored_replacements(const std::string& wf, workflow_graph& graph) {
  for (auto& r : check(st_.cfg.store->replacements_of(wf))) {
    auto parsed = canvas_from_value(r.canvas, st_.cfg.limits);
    // The ids must come out as they were; anything else is a damaged store.
    if (!parsed || static_cast<node_id>(graph.size()) != r.first_node ||
        graph.attach_replacement(r.node, std::move(*parsed)) != r.first_node) {
      throw store_failure{error{errc::store_corrupt, "workflow " + wf + ": the stored replacement of node " +
                                                         std::to_string(r.node) + " does not fit its graph"}};
    }
  }
}

}  // namespace trellis::detail
