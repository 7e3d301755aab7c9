#pragma once

/// @file
/// A canvas expanded into nodes, and the rules that move it forward: which
/// task is ready with which arguments, how a chain advances, how a group and a
/// chord header count their members, when the workflow is finished.
///
/// Pure logic: no I/O, no threads, no clocks. The dispatcher owns one graph per
/// active workflow, feeds it outcomes and acts on the effects it reports.
///
/// Node ids are assigned depth-first from the canvas, so expanding the same
/// canvas always gives the same ids. That is what makes restoring after a
/// crash a replay: expand the stored canvas again and feed it the stored leaf
/// outcomes (`known_outcome`); nothing about composite nodes is stored.
///
/// Replacement (Celery's `replace`): a leaf whose handler replaced itself
/// with a canvas grows that canvas's nodes, appended after every node there
/// is, under the leaf; the leaf ends as that canvas ends. Restoring attaches
/// the stored replacements first, in the order of their first node id, so
/// the ids come out as they were (`attach_replacement`), and replays the rest.
///
/// Callbacks (`canvas::links`, `canvas::link_errors`) are nodes too,
/// expanded right after the subtree of the node they hang on (so their ids
/// are as deterministic as the rest), with that node as their parent but
/// outside its `children`. When the node ends, its links are activated with
/// its result (on SUCCESS) or its link_errors with its error map plus
/// `workflow` (on FAILURE); the callbacks that will not run end at once as
/// REVOKED with the error type `not_run` (`graph_effects::skipped`), and so
/// do, when the main canvas has ended, the callbacks of nodes that never
/// ended. The root's state and result are the main canvas's, but the
/// workflow is finished only when the root is terminal and no activated
/// callback is still running.
///
/// Once-only transitions: an outcome for a node that is already terminal, or
/// for an attempt other than the node's current one, changes nothing and is
/// reported as a duplicate. This is the guard that keeps a redelivered message
/// from advancing a chain twice or counting a chord member twice.

#include "trellis/canvas.hpp"
#include "trellis/node_state.hpp"
#include "trellis/value.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trellis::detail {

using node_id = std::int32_t;

/// Whether a node is the root of a callback, and of which kind.
enum class callback_kind : std::uint8_t { none, link, link_error };

/// The error type of a callback that did not run: a link of a node that
/// did not succeed, a link_error of one that did not fail, any callback of
/// a revoked node or of one that never ended.
inline constexpr const char* callback_not_run = "not_run";

/// One node: a task invocation (leaf) or a chain/group/chord (composite).
struct graph_node {
  canvas::kind kind = canvas::kind::task;
  node_id parent = -1;
  /// Position among the parent's children (for a chord, the body is last).
  std::int32_t position = 0;
  std::vector<node_id> children;
  /// Leaves only: the signature (points into the graph's canvas, which it owns).
  const signature* sig = nullptr;
  node_state state = node_state::pending;
  /// Leaves only: attempts started so far.
  std::int32_t attempt = 0;
  /// Leaves only: attempts made before the current retry budget (a
  /// dead-letter replay starts a new budget without reusing attempt numbers).
  std::int32_t retry_base = 0;
  /// Leaves: the input from the previous step, when there is one.
  std::optional<value> input;
  value result;
  /// {"task", "node", "type", "message"} after a failure.
  value error;
  /// Composites: children that reached a terminal state.
  std::int32_t finished = 0;
  /// Leaves whose handler replaced itself, and maps over their input once
  /// it arrived: the root of the replacement canvas, whose result becomes
  /// the node's; -1 otherwise.
  node_id replacement = -1;
  /// A map, starmap or chunks over its input (a group with no members):
  /// its canvas, expanded into a replacement when the input arrives.
  std::shared_ptr<const canvas> over_input;
  /// The roots of the callbacks hanging on this node, in canvas order.
  std::vector<node_id> links;
  std::vector<node_id> link_errors;
  /// Set on the root of a callback (`parent` is the node it hangs on,
  /// `position` its index in that node's `links` or `link_errors`).
  callback_kind callback = callback_kind::none;
};

/// A leaf outcome already recorded in the store, replayed on restore.
struct known_outcome {
  node_state state = node_state::pending;
  std::int32_t attempt = 0;
  value result;
  value error;
  std::int32_t retry_base = 0;
};

/// What happened, for the dispatcher to act on after a call.
struct graph_effects {
  /// Leaves that became ready, in activation order. Their arguments are
  /// `workflow_graph::arguments_of(node)`.
  std::vector<node_id> ready;
  /// Leaves that completed from a known outcome during a restore.
  std::vector<node_id> replayed;
  /// Set when the root reached a terminal state during the call.
  bool finished = false;
  /// Maps over their input that expanded during the call, in order: the
  /// dispatcher stores each (`replacement_canvas`) in the batch.
  std::vector<node_id> expanded;
  /// Nodes the graph grew by during the call (replacements, expansions).
  std::size_t added_nodes = 0;
  /// Leaves whose replacement ended during the call, so that they ended
  /// too (with its state and result): the dispatcher updates their rows.
  std::vector<node_id> replaced_done;
  /// Leaves of callbacks that will not run, ended REVOKED with the error
  /// type `not_run` during the call: the dispatcher records their rows.
  std::vector<node_id> skipped;
};

/// Whether an outcome changed the graph.
enum class apply_result : std::uint8_t {
  applied,
  /// The node is already terminal or the attempt is not the current one.
  duplicate,
  /// No such leaf.
  unknown_node,
};

class workflow_graph {
 public:
  /// Expands `c` (copied into the graph). Node 0 is the root. `workflow_id`
  /// goes into the error map a link_error receives.
  explicit workflow_graph(canvas c, std::string workflow_id = {});

  workflow_graph(const workflow_graph&) = delete;
  workflow_graph& operator=(const workflow_graph&) = delete;
  workflow_graph(workflow_graph&&) = default;
  workflow_graph& operator=(workflow_graph&&) = default;

  /// Activates the root. `known` (may be empty) gives the stored outcome of a
  /// leaf, if any: a leaf with a terminal stored outcome completes at once
  /// instead of becoming ready. Call once.
  graph_effects start(const std::function<std::optional<known_outcome>(node_id)>& known = {});

  /// Marks a ready leaf as handed to a worker for attempt `attempt`.
  void mark_dispatched(node_id leaf, std::int32_t attempt);

  /// Success of attempt `attempt` of `leaf`.
  apply_result succeed(node_id leaf, std::int32_t attempt, value result, graph_effects& fx);
  /// Final failure of attempt `attempt` of `leaf` (retries exhausted or none).
  /// `err` is {"type", "message"}; the graph adds "task" and "node".
  apply_result fail(node_id leaf, std::int32_t attempt, value err, graph_effects& fx);
  /// Attempt `attempt` failed and another one is scheduled.
  apply_result schedule_retry(node_id leaf, std::int32_t attempt);

  /// Attempt `attempt` of `leaf` replaced itself with `c`: `c` is attached
  /// (`attach_replacement`) and activated with no input; the leaf stays
  /// STARTED until `c` ends, then ends as it does (its result, or its
  /// failure). A second outcome for the leaf, this attempt or another, is a
  /// duplicate. The first new node id is `size()` before the call.
  apply_result replace(node_id leaf, std::int32_t attempt, canvas c, graph_effects& fx);

  /// Appends the nodes of `c` (ids from `size()`) as the replacement of
  /// `leaf`, without activating anything: for a restore, before `start`,
  /// in the order the replacements were made. Returns the id of `c`'s root;
  /// -1 (nothing changed) when `leaf` is neither a leaf nor a map over its
  /// input, or already has one.
  node_id attach_replacement(node_id leaf, canvas c);

  /// The canvas attached as the replacement of `id` (which has one).
  const canvas& replacement_canvas(node_id id) const;

  /// Revokes node `id` (Celery's revoke of a task): every leaf under it
  /// that is not terminal becomes REVOKED with `err` ({"type", "message"};
  /// the graph adds "task" and "node"), appended to `revoked`. A leaf that
  /// was ready or running completes now; one still waiting for the steps
  /// before it completes as REVOKED when they reach it, without running.
  /// A revoked leaf ends its chain and its group as REVOKED; a revoked
  /// chord header member makes the chord fail (FAILURE), as Celery's
  /// ChordError does. `duplicate` when nothing under `id` was left to
  /// revoke, `unknown_node` when there is no node `id`.
  apply_result revoke(node_id id, const value& err, std::vector<node_id>& revoked, graph_effects& fx);

  /// Positional arguments of a ready leaf: the previous result first (unless
  /// the signature is immutable or there is no previous step), then its own.
  value::array arguments_of(node_id leaf) const;

  const graph_node& node(node_id id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  std::size_t size() const noexcept { return nodes_.size(); }
  const canvas& source() const noexcept { return canvas_; }
  const graph_node& root() const { return nodes_.front(); }
  /// The root is terminal and every callback that was activated ended.
  bool is_finished() const noexcept { return settled_; }
  /// Callbacks activated and not ended yet.
  std::int32_t running_callbacks() const noexcept { return running_callbacks_; }

 private:
  node_id expand(const canvas& c, node_id parent, std::int32_t position);
  node_id expand_main(const canvas& c, node_id parent, std::int32_t position);
  struct pending_step;
  /// When `id` ended: queues the callbacks that run, skips the others.
  void decide_callbacks(node_id id, std::deque<pending_step>& queue, graph_effects& fx);
  /// Ends every node under `id` that is not terminal as REVOKED `not_run`.
  void skip(node_id id, const std::string& why, graph_effects& fx);
  /// Sets `fx.finished` once the root is terminal and no callback runs.
  void settle(graph_effects& fx);
  void activate(node_id id, std::optional<value> input, graph_effects& fx);
  void complete(node_id id, graph_effects& fx);
  void run(std::deque<pending_step>& queue, graph_effects& fx);
  apply_result check_outcome(node_id leaf, std::int32_t attempt) const;

  /// Every node under `id` (itself included), through replacements too.
  std::vector<node_id> subtree(node_id id) const;

  canvas canvas_;
  /// The replacement canvases by the node they replace, which own the
  /// signatures their leaves point to.
  std::vector<std::pair<node_id, canvas>> replacements_;
  std::vector<graph_node> nodes_;
  std::function<std::optional<known_outcome>(node_id)> known_;
  std::string workflow_id_;
  std::int32_t running_callbacks_ = 0;
  bool settled_ = false;
};

}  // namespace trellis::detail
