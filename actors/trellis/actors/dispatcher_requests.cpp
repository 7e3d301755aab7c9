// Requests to the dispatcher: submissions (from the facade or over the
// transport), status, the replay of a dead letter, and the control requests
// of cluster mode (status, dead letters, replay, revoke, inspect, list,
// graph). Every
// answer that could show state a crash might take back waits for the
// commit. Kept apart from the event path because requests are answered and
// events are not.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/store/graph_document.hpp"
#include "trellis/store/store_reports.hpp"
#include "trellis/store/workflow_pages.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/partition.hpp"

#include <algorithm>

namespace trellis::detail {

namespace {

/// A submission with at least this many tasks ready at once is committed
/// before they are encoded and published in chunks of this size (see
/// `dispatcher_logic::submit`); below it, one commit after the encoding is
/// cheaper than the extra sync.
constexpr std::size_t publish_early_chunk = 1024;

}  // namespace

caf::result<std::string> dispatcher_logic::submit(const std::string& bytes) {
  auto env = decode(bytes, envelope_limits{st_.cfg.limits.max_submission_bytes});
  if (!env) {
    return to_caf_error(env.error());
  }
  if (env->type != envelope_type::submit) {
    return to_caf_error(
        error{errc::malformed_envelope, std::string{"expected a submit envelope, got "} + to_string(env->type)});
  }
  if (auto owner = partition_of(env->workflow_id, st_.cfg.partitions); owner != st_.cfg.partition) {
    return to_caf_error(
        error{errc::invalid_config, "workflow " + env->workflow_id + " belongs to partition " + std::to_string(owner) +
                                        " of " + std::to_string(st_.cfg.partitions) +
                                        ", not to this dispatcher's partition " + std::to_string(st_.cfg.partition) +
                                        "; the client and the dispatchers must use the same --partitions"});
  }
  auto parsed = canvas_from_value(env->payload, st_.cfg.limits);
  if (!parsed) {
    return to_caf_error(parsed.error());
  }
  if (auto ok = check_priorities_honoured(*parsed, st_.cfg.bus->honours_priority()); !ok) {
    return to_caf_error(ok.error());
  }
  // A workflow already held is answered with its id, and only once it is
  // committed: it may have come in the open batch (a client re-sending a
  // request whose answer is late), and an answer must never promise what a
  // crash could still undo.
  auto known = [&](std::string id) -> caf::result<std::string> {
    if (!st_.in_batch) {
      return id;
    }
    auto promise = self_->make_response_promise<std::string>();
    st_.replies.push_back(pending_reply{promise, std::move(id), st_.submission_token});
    return promise;
  };
  std::optional<std::string> key;
  if (auto k = env->options.find("submit_key"); k != env->options.end() && k->second.is_string()) {
    key = k->second.as_string();
    // Same key, same workflow: the first submission wins.
    if (auto existing = check(st_.cfg.store->find_workflow_by_key(*key)); existing) {
      return known(existing->id);
    }
  }
  if (st_.active.count(env->workflow_id) != 0 || check(st_.cfg.store->find_workflow(env->workflow_id))) {
    return known(env->workflow_id);  // a re-sent submission of a workflow we already hold
  }
  open_batch();
  workflow_record rec;
  rec.id = env->workflow_id;
  rec.submit_key = key;
  rec.state = node_state::started;
  rec.canvas = std::move(env->payload);  // parsed above; the envelope needs it no more
  rec.created_at = now_ms();
  check(st_.cfg.store->insert_workflow(rec));
  changed();
  st_.cfg.stats->add(counter::workflows_submitted, "", "");
  announce(lifecycle_kind::submitted, rec.id, std::nullopt, "", 0);
  auto& aw = cache(rec.id, std::move(*parsed));
  auto fx = aw.graph.start();
  auto promise = self_->make_response_promise<std::string>();
  st_.replies.push_back(pending_reply{promise, rec.id, st_.submission_token});
  if (fx.ready.size() >= publish_early_chunk) {
    // A large workflow: commit its row now, so that it is durable (a
    // restore publishes every ready node again) and the submitter can be
    // answered, and publish its first tasks in chunks while the rest are
    // still being encoded, so workers start early. What this batch held
    // before is committed and published too.
    flush();
    open_batch();
    st_.publish_early_every = publish_early_chunk;
  }
  auto published = fx.ready.size();
  process(rec.id, aw, fx);
  st_.publish_early_every = 0;
  changed(published);  // the outbox's size bounds a batch too (see restore)
  return promise;
}

void dispatcher_logic::submit_from_bus(const std::string& bytes, std::uint64_t token) {
  st_.submission_token = token;  // picked up by submit() when its reply waits for the commit
  auto r = submit(bytes);
  st_.submission_token = 0;
  if (r.flag == caf::rt_value && r.value.match_elements<std::string>()) {
    // Known already (a re-sent submission or a seen submit key): answer now.
    st_.cfg.bus->answer_submission(delivery{{}, token, 1},
                                   pack_to_string(value(value::map{{"id", r.value.get_as<std::string>(0)}})));
  } else if (r.flag == caf::rt_error) {
    auto e = from_caf_error(r.err, to_string(r.err));
    value::map err{{"type", std::string{to_string(e.code())}}, {"message", e.message()}};
    st_.cfg.bus->answer_submission(delivery{{}, token, 1},
                                   pack_to_string(value(value::map{{"error", std::move(err)}})));
  }
}

caf::result<std::string> dispatcher_logic::status(const std::string& wf) {
  value::map out{{"id", wf}};
  if (auto it = st_.active.find(wf); it != st_.active.end()) {
    out["state"] = std::string{to_string(node_state::started)};
    return pack_to_string(value(std::move(out)));
  }
  auto rec = check(st_.cfg.store->find_workflow(wf));
  if (!rec) {
    return to_caf_error(error{errc::not_found, "no workflow with id " + wf});
  }
  out["state"] = std::string{to_string(rec->state)};
  if (is_terminal(rec->state)) {  // an evicted graph's workflow is still running
    out["result"] = rec->result;
    out["error"] = rec->error;
  }
  return pack_to_string(value(std::move(out)));
}

caf::result<std::string> dispatcher_logic::replay(std::int64_t id) {
  auto d = check(st_.cfg.store->find_dead_letter(id));
  if (!d) {
    return to_caf_error(error{errc::not_found, "no dead letter with id " + std::to_string(id)});
  }
  if (d->workflow_id.empty() || d->node < 0) {
    return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) + " (" + d->reason +
                                                          ") belongs to no workflow node; there is nothing to "
                                                          "run again, it stays in the store"});
  }
  auto rec = check(st_.cfg.store->find_workflow(d->workflow_id));
  if (!rec) {
    return to_caf_error(error{errc::not_found, "dead letter " + std::to_string(id) + " names workflow " +
                                                   d->workflow_id + ", which this store does not hold"});
  }
  if (d->replayed_at != 0) {
    return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) +
                                                          " was already replayed; its node has run again since"});
  }
  // Only a node that is still failed can run again: replaying must never
  // reopen a step that has succeeded since.
  std::int32_t last_attempt = d->attempts;
  for (const auto& n : check(st_.cfg.store->nodes_of(d->workflow_id))) {
    if (n.node != d->node) {
      continue;
    }
    if (n.state != node_state::failure) {
      return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) + ": node " +
                                                            std::to_string(n.node) + " of workflow " + d->workflow_id +
                                                            " is " + std::string{to_string(n.state)} +
                                                            ", not FAILURE; there is nothing to replay"});
    }
    last_attempt = std::max(last_attempt, n.attempt);
  }
  open_batch();
  // The node starts over with a fresh retry budget but keeps counting
  // attempts: attempt numbers are message ids (broker dedup, the once-only
  // guard), so a replay must never reuse one. The workflow is restored from
  // its rows, so every composite above the node is derived again.
  node_record row;
  row.workflow_id = d->workflow_id;
  row.node = d->node;
  row.task = d->task;
  row.state = node_state::received;
  row.attempt = last_attempt;
  row.retry_base = last_attempt;
  row.updated_at = now_ms();
  check(st_.cfg.store->upsert_node(row));
  check(st_.cfg.store->reopen_workflow(d->workflow_id));
  check(st_.cfg.store->mark_dead_letter_replayed(id, now_ms()));
  changed();
  uncache(d->workflow_id);
  st_.evicted.erase(d->workflow_id);
  rec->state = node_state::started;
  restore(*rec);
  auto promise = self_->make_response_promise<std::string>();
  st_.replies.push_back(pending_reply{promise, d->workflow_id, 0, st_.control_token});
  return promise;
}

void dispatcher_logic::answer_after_commit(std::uint64_t token, std::string reply) {
  if (st_.in_batch) {
    st_.control_answers.emplace_back(token, std::move(reply));
  } else {
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
  }
}

void dispatcher_logic::control(const std::string& bytes, std::uint64_t token) {
  auto request = decode_control_request(bytes);
  if (!request) {
    // A bad request gets an error answer; it never reaches the store.
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_error(request.error()));
    return;
  }
  bool reads_store = request->op == control_op::status || request->op == control_op::dlq_list ||
                     request->op == control_op::list || request->op == control_op::graph;
  if (reads_store && st_.in_batch) {
    st_.deferred_controls.emplace_back(bytes, token);
    return;
  }
  switch (request->op) {
    case control_op::status:
      control_status(request->workflow_id, token);
      return;
    case control_op::dlq_list:
      control_dlq_list(token);
      return;
    case control_op::dlq_replay:
      control_dlq_replay(request->letter, token);
      return;
    case control_op::revoke:
      control_revoke(*request, token);
      return;
    case control_op::inspect:
      control_inspect(token);
      return;
    case control_op::list:
      control_list(*request, token);
      return;
    case control_op::graph:
      control_graph(request->workflow_id, token);
      return;
    case control_op::prune:
      control_prune(request->older_than_ms, token);
      return;
    case control_op::forget:
      control_forget(request->workflow_id, token);
      return;
    case control_op::metrics:  // ctl.metrics is served beside the actor (cluster_node.cpp)
    case control_op::revoked:
      break;
  }
  st_.cfg.bus->answer_control(
      delivery{{}, token, 1},
      encode_control_error(error{errc::malformed_envelope, std::string{"control op '"} + to_string(request->op) +
                                                               "' is not a request to a dispatcher partition"}));
}

namespace {

/// The reply to a request for one workflow's document: the document, the
/// store's error, or `not_found`.
std::string document_reply(expected<std::optional<value::map>> doc, const std::string& wf) {
  if (!doc) {
    return encode_control_error(doc.error());
  }
  if (!*doc) {
    return encode_control_error(error{errc::not_found, "no workflow with id " + wf});
  }
  return encode_control_reply(value(std::move(**doc)));
}

}  // namespace

void dispatcher_logic::control_status(const std::string& wf, std::uint64_t token) {
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, document_reply(status_document(*st_.cfg.store, wf), wf));
}

void dispatcher_logic::control_list(const control_request& request, std::uint64_t token) {
  // The decoder checked the state's name and the limit's range.
  auto state = request.state.empty() ? std::nullopt : node_state_from_string(request.state);
  auto page = workflow_page(*st_.cfg.store, state, static_cast<std::size_t>(request.limit), request.cursor);
  st_.cfg.bus->answer_control(delivery{{}, token, 1},
                              page ? encode_control_reply(value(std::move(*page))) : encode_control_error(page.error()));
}

void dispatcher_logic::control_graph(const std::string& wf, std::uint64_t token) {
  st_.cfg.bus->answer_control(delivery{{}, token, 1},
                              document_reply(graph_document(*st_.cfg.store, wf, st_.cfg.limits), wf));
}

void dispatcher_logic::control_dlq_list(std::uint64_t token) {
  auto rows = dead_letter_rows(*st_.cfg.store);
  auto reply = rows ? encode_control_reply(value(value::map{{"letters", std::move(*rows)}}))
                    : encode_control_error(rows.error());
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
}

void dispatcher_logic::control_dlq_replay(std::int64_t letter, std::uint64_t token) {
  st_.control_token = token;  // picked up by replay() when its reply waits for the commit
  auto r = replay(letter);
  st_.control_token = 0;
  if (r.flag == caf::rt_error) {
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_error(from_caf_error(r.err, to_string(r.err))));
  }
}

void dispatcher_logic::control_revoke(const control_request& request, std::uint64_t token) {
  const auto& wf = request.workflow_id;
  auto* aw = find_active(wf);
  if (aw == nullptr) {
    auto rec = st_.cfg.store->find_workflow(wf);
    std::string reply;
    if (!rec) {
      reply = encode_control_error(rec.error());
    } else if (!*rec) {
      reply = encode_control_error(error{errc::not_found, "no workflow with id " + wf});
    } else {
      reply = encode_control_error(error{errc::invalid_workflow, "workflow " + wf + " already finished as " +
                                                                     std::string{to_string((*rec)->state)} +
                                                                     "; there is nothing to revoke"});
    }
    // What the store says may be this batch's own uncommitted finish.
    answer_after_commit(token, std::move(reply));
    return;
  }
  auto answer = request.node ? revoke_node(wf, *aw, *request.node, request.terminate)
                             : revoke_workflow(wf, *aw, request.terminate);
  answer_after_commit(token, answer ? encode_control_reply(*answer) : encode_control_error(answer.error()));
}

expected<value> dispatcher_logic::revoke_workflow(const std::string& wf, active_workflow& aw, bool terminate) {
  open_batch();
  // Every task not finished yet is REVOKED, and so is the workflow, at once
  // (Celery's revoke of every task of a canvas). Finishing the workflow is
  // the durable record of the revocation: once it commits, a restart does
  // not restore the workflow, and its late outcomes count as duplicates.
  auto err = error_value(to_string(errc::revoked), "revoked by request");
  for (node_id id = 0; static_cast<std::size_t>(id) < aw.graph.size(); ++id) {
    const auto& n = aw.graph.node(id);
    if (n.kind != canvas::kind::task || is_terminal(n.state)) {
      continue;
    }
    if (n.state != node_state::pending) {
      st_.cfg.stats->add(counter::tasks_revoked, queue_of(*n.sig), n.sig->task());
      announce(lifecycle_kind::revoked, wf, id, n.sig->task(), n.attempt);
      value::map e = err.as_map();
      e["task"] = n.sig->task();
      e["node"] = id;
      check(st_.cfg.store->upsert_node(row_of(wf, id, n, node_state::revoked, value{}, value(std::move(e)), 0, now_ms())));
    }
  }
  // When only callbacks were left running, the main canvas had ended: the
  // workflow keeps its state and result (decision 0033).
  workflow_outcome out{wf, node_state::revoked, value{}, err};
  if (is_terminal(aw.graph.root().state)) {
    out = workflow_outcome{wf, aw.graph.root().state, aw.graph.root().result, aw.graph.root().error};
  }
  check(st_.cfg.store->finish_workflow(wf, out.state, out.result, out.error, now_ms()));
  changed();
  drop_unpublished(wf, {});
  uncache(wf);  // `aw` dies here
  st_.finished.push_back(out);
  control_request notice;
  notice.op = control_op::revoked;
  notice.workflow_id = wf;
  notice.terminate = terminate;
  st_.revoked.push_back(std::move(notice));
  return value(value::map{{"id", wf},
                          {"state", std::string{to_string(out.state)}},
                          {"result", out.result},
                          {"error", out.error}});
}

expected<value> dispatcher_logic::revoke_node(const std::string& wf, active_workflow& aw, std::int32_t node,
                                              bool terminate) {
  if (static_cast<std::size_t>(node) >= aw.graph.size()) {
    return error{errc::not_found, "workflow " + wf + " has no node " + std::to_string(node) + " (it has " +
                                      std::to_string(aw.graph.size()) + ")"};
  }
  // Which leaves may have a message out, before the revoke changes states.
  std::vector<bool> was_out(aw.graph.size(), false);
  for (auto id = static_cast<std::size_t>(node); id < aw.graph.size(); ++id) {
    const auto& n = aw.graph.node(static_cast<node_id>(id));
    was_out[id] = n.kind == canvas::kind::task && !is_terminal(n.state) && n.state != node_state::pending;
  }
  std::vector<node_id> revoked;
  graph_effects fx;
  auto err = error_value(to_string(errc::revoked), "revoked by request");
  auto r = aw.graph.revoke(node, err, revoked, fx);
  if (r == apply_result::duplicate) {
    return error{errc::invalid_workflow, "node " + std::to_string(node) + " of workflow " + wf +
                                             " already finished as " +
                                             std::string{to_string(aw.graph.node(node).state)} +
                                             " (every task under it did); there is nothing to revoke"};
  }
  open_batch();
  value::array listed;
  control_request notice;
  notice.op = control_op::revoked;
  notice.workflow_id = wf;
  notice.terminate = terminate;
  for (auto leaf : revoked) {
    const auto& n = aw.graph.node(leaf);
    // A revoked leaf's row is its durable record: a restore replays it as
    // a known REVOKED outcome, whether or not the leaf had started.
    check(st_.cfg.store->upsert_node(row_of(wf, leaf, n, node_state::revoked, value{}, n.error, 0, now_ms())));
    listed.emplace_back(leaf);
    if (was_out[static_cast<std::size_t>(leaf)]) {
      if (notice.nodes.size() == max_revoked_nodes) {  // one notice is bounded; send several
        st_.revoked.push_back(notice);
        notice.nodes.clear();
      }
      notice.nodes.push_back(leaf);
    }
    st_.cfg.stats->add(counter::tasks_revoked, queue_of(*n.sig), n.sig->task());
    announce(lifecycle_kind::revoked, wf, leaf, n.sig->task(), n.attempt);
  }
  changed(revoked.size());
  drop_unpublished(wf, revoked);
  if (!notice.nodes.empty()) {
    st_.revoked.push_back(std::move(notice));
  }
  value::map answer{{"id", wf},
                    {"node", node},
                    {"state", std::string{to_string(node_state::revoked)}},
                    {"revoked", value(std::move(listed))}};
  process(wf, aw, fx);  // `aw` may die here, when the revoke finished the workflow
  return value(std::move(answer));
}

void dispatcher_logic::drop_unpublished(const std::string& wf, const std::vector<node_id>& leaves) {
  // Task messages of revoked tasks that are not published yet never will be.
  // Their ids are `<workflow>:<node>:<attempt>`.
  // No leaves: every task of the workflow.
  const std::string of_workflow = wf + ":";
  std::unordered_set<std::string> prefixes;
  for (auto leaf : leaves) {
    prefixes.insert(of_workflow + std::to_string(leaf) + ":");
  }
  auto revoked = [&](const outgoing_task& t) {
    if (t.id.compare(0, of_workflow.size(), of_workflow) != 0) {
      return false;
    }
    return leaves.empty() || prefixes.count(t.id.substr(0, t.id.rfind(':') + 1)) != 0;
  };
  for (auto& [queue, messages] : st_.outbox) {
    messages.erase(std::remove_if(messages.begin(), messages.end(), revoked), messages.end());
  }
  // A list the broker refused once stays as it was (see `unsent`): part of
  // it may be queued already, and workers skip revoked tasks.
  for (auto& [queue, lists] : st_.unsent) {
    for (auto& list : lists) {
      if (!list.attempted) {
        list.tasks.erase(std::remove_if(list.tasks.begin(), list.tasks.end(), revoked), list.tasks.end());
      }
    }
  }
}

void dispatcher_logic::control_inspect(std::uint64_t token) {
  value::map answer = st_.cfg.inspect_identity;
  answer["role"] = "dispatcher";
  value::array in_flight;
  for (const auto& [id, aw] : st_.active) {
    in_flight.emplace_back(id);
  }
  for (const auto& id : st_.evicted) {
    in_flight.emplace_back(id);
  }
  std::sort(in_flight.begin(), in_flight.end(),
            [](const value& a, const value& b) { return a.as_string() < b.as_string(); });
  answer["workflows_in_flight"] = std::move(in_flight);
  std::size_t unsent = 0;
  for (const auto& [queue, lists] : st_.unsent) {
    for (const auto& list : lists) {
      unsent += list.tasks.size();
    }
  }
  answer["unsent_tasks"] = static_cast<std::int64_t>(unsent);
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_reply(value(std::move(answer))));
}

}  // namespace trellis::detail
