#pragma once

/// @file
/// Private to the dispatcher: its state and `dispatcher_logic`, the methods
/// that act on it, shared by the files that implement them. One file per
/// responsibility (docs/architecture.md):
///
/// - dispatcher.cpp: the actor's behavior, its transport sinks, and how it
///   stops when its store fails;
/// - dispatcher_batch.cpp: the open batch, its commit, and what may happen
///   only after the commit (publish, ack, answer, notify);
/// - dispatcher_publish.cpp: ready leaves become task messages, published
///   by queue, with the unsent ones kept and retried while the broker is away;
/// - dispatcher_timers.cpp: due times (countdowns, retries) and their arrival;
/// - dispatcher_outcomes.cpp: outcome events and lost tasks applied to the
///   graphs, dead letters, and workflows settled when their root finishes;
/// - dispatcher_replace.cpp: a handler's replacement of itself (`replace`
///   events) checked, stored and expanded, and stored replacements attached
///   again when a graph is rebuilt;
/// - dispatcher_restore.cpp: restoring unfinished workflows after a
///   (re)start, and the graph cache that evicts idle graphs and rebuilds them;
/// - dispatcher_retention.cpp: the retention sweep on its timer, and
///   `prune` and `forget` by hand;
/// - dispatcher_requests.cpp: submissions, status, dead-letter replay and
///   the control requests of cluster mode (revoke, inspect, ...).

#include "trellis/actors/dispatcher.hpp"
#include "trellis/clock.hpp"
#include "trellis/envelope.hpp"
#include "trellis/lifecycle_events.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/workflow_graph.hpp"

#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace trellis::detail {

/// Thrown by `dispatcher_logic::check` when the store refuses a read or a
/// write, from deep inside a handler, to skip the rest of the message's
/// work; caught where the message is handled (dispatcher.cpp), which stops
/// the actor with the failure as its exit reason: the supervisor does not
/// restart a dispatcher whose store failed (a restart would run again the
/// tasks whose outcomes could not be committed), and the facade reports the
/// error.
struct store_failure {
  error err;
};

/// The node's row as it must be stored now; `retry_base` is carried along so
/// that replacing the row never resets a replayed node's retry budget.
inline node_record row_of(const std::string& wf, node_id leaf, const graph_node& n, node_state state, value result,
                          value error, epoch_ms due_at, epoch_ms now) {
  node_record row;
  row.workflow_id = wf;
  row.node = leaf;
  row.task = n.sig->task();
  row.state = state;
  row.attempt = n.attempt;
  row.result = std::move(result);
  row.error = std::move(error);
  row.due_at = due_at;
  row.updated_at = now;
  row.retry_base = n.retry_base;
  return row;
}

inline value error_value(const std::string& type, const std::string& message) {
  return value(value::map{{"type", type}, {"message", message}});
}

struct active_workflow {
  active_workflow(const std::string& id, canvas c) : graph(std::move(c), id) {}
  workflow_graph graph;
  /// Its place in the cache's use order (`dispatcher_state::lru`); only
  /// while `timers` is 0.
  std::list<std::string>::iterator lru;
  /// Tells this stay in the cache from earlier ones of the same workflow:
  /// a due message scheduled before the workflow was last dropped (finished,
  /// revoked, replayed from the dead-letter queue) carries an older one and
  /// is ignored, so `timers` counts exactly this stay's own.
  std::uint64_t incarnation = 0;
  /// Due-time messages (retries, countdowns) scheduled in this stay and not
  /// yet received: they live only in the mailbox, so the graph must stay
  /// cached. While there are any it is pinned: out of the use order, where
  /// eviction would have to step over it on every commit.
  std::int32_t timers = 0;
};

struct pending_reply {
  caf::typed_response_promise<std::string> promise;
  std::string workflow_id;
  /// Non-zero for a submission that came over the transport: it is answered
  /// through `transport::answer_submission` too.
  std::uint64_t submission_token = 0;
  /// Non-zero for a control request (a replay over the transport): it is
  /// answered through `transport::answer_control` too.
  std::uint64_t control_token = 0;
};

struct dispatcher_state {
  static inline const char* name = "trellis.dispatcher";

  dispatcher_config cfg;
  std::unordered_map<std::string, active_workflow> active;
  /// Cached workflows that may be evicted (none pinned by a due message),
  /// least recently used first, and the node count of every cached one.
  std::list<std::string> lru;
  std::size_t cached_nodes = 0;
  /// Unfinished workflows whose graphs were evicted (state only in the store).
  std::unordered_set<std::string> evicted;
  std::uint64_t next_incarnation = 1;
  /// The largest task message the transport carries and a worker decodes,
  /// read once per batch (the broker's limit can change on reconnect).
  std::size_t message_limit = SIZE_MAX;
  std::vector<std::string> restored;
  std::mt19937_64 rng;

  // The open batch: what becomes visible only after its commit.
  bool in_batch = false;
  std::size_t batch_changes = 0;
  std::map<std::string, std::vector<outgoing_task>> outbox;
  /// Non-zero while a large submission whose workflow row is committed
  /// dispatches its first tasks: each queue's outbox is published as soon
  /// as it holds this many (see `submit`).
  std::size_t publish_early_every = 0;
  /// True while a restore dispatches: every task it publishes may be out
  /// already (see `restore`).
  bool republishing = false;
  /// Ids of the task messages a restore scheduled for their due time (a
  /// retry, a countdown): the time may have come before the restart, and
  /// the message gone out then, so on_due publishes them as republished.
  std::unordered_set<std::string> republish_when_due;
  /// Ids of tasks a restore found out already (`transport::work_already_out`):
  /// queued, in a worker's hands, or with an outcome waiting. Published
  /// again they would run twice, so the restore leaves them to the broker.
  std::unordered_set<std::string> already_out;
  std::vector<pending_reply> replies;
  std::vector<workflow_outcome> finished;
  std::vector<std::uint64_t> events_to_ack;
  /// Broker handles of lost task messages recorded in this batch.
  std::vector<std::uint64_t> lost_to_discard;
  /// The transport token of the submission being handled (0: none).
  std::uint64_t submission_token = 0;
  /// The transport token of the control request being handled (0: none).
  std::uint64_t control_token = 0;
  /// Control answers that may be sent only after the commit: token, reply.
  std::vector<std::pair<std::uint64_t, std::string>> control_answers;
  /// Revocations of this batch (`revoked` notices), announced after the commit.
  std::vector<control_request> revoked;
  /// Task events of this batch, announced after the commit (only when the
  /// transport announces them).
  std::vector<lifecycle_event> lifecycle;
  /// Read-only control requests that arrived while a batch was open: they
  /// are answered after its commit, so an answer never shows state that a
  /// crash could still take back.
  std::vector<std::pair<std::string, std::uint64_t>> deferred_controls;

  // Committed task messages the transport has not taken yet (broker away),
  // by queue, in the lists they were first handed over in. A list the broker
  // refused is tried again as it was, never merged with later messages: the
  // same list makes the same packs under the same message ids, so whatever
  // of it did land before the error is dropped by the broker's dedup
  // instead of running twice.
  struct unsent_list {
    std::vector<outgoing_task> tasks;
    bool attempted = false;
  };
  std::map<std::string, std::deque<unsent_list>> unsent;
  bool republish_scheduled = false;
  /// Rows the retention sweeps of this incarnation deleted (for tests and
  /// the log); the metric is `counter::rows_pruned`.
  std::uint64_t rows_pruned = 0;
  backoff republish_backoff{std::chrono::milliseconds{100}, std::chrono::milliseconds{5000}};
};

using dispatcher_pointer = dispatcher_actor::stateful_pointer<dispatcher_state>;

/// Everything the dispatcher does, as methods over its state and self pointer.
class dispatcher_logic {
 public:
  explicit dispatcher_logic(dispatcher_pointer self) : self_(self), st_(self->state) {}

  void restore_all();
  caf::result<std::string> submit(const std::string& bytes);
  void submit_from_bus(const std::string& bytes, std::uint64_t token);
  void on_events(std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens);
  void on_due(const std::string& wf, std::int32_t node, std::int32_t attempt, std::uint64_t incarnation);
  void on_lost(const std::string& bytes, std::int32_t deliveries, std::uint64_t handle);
  void pass_lost(std::uint64_t handle);
  caf::result<std::string> status(const std::string& wf);
  caf::result<std::string> replay(std::int64_t dead_letter_id);
  void control(const std::string& bytes, std::uint64_t token);
  void flush();
  /// The retention sweep (dispatcher_retention.cpp): one bounded batch of
  /// expired rows deleted, and the next sweep scheduled.
  void expire();
  /// Prunes by hand every workflow finished more than `older_than_ms` ago.
  caf::result<std::int64_t> prune(std::int64_t older_than_ms);
  /// Forgets one finished workflow.
  caf::result<std::string> forget(const std::string& wf);
  /// Schedules the next retention sweep after `delay` (none when nothing expires).
  void schedule_expiry(std::chrono::milliseconds delay);
  /// Records a task event of this batch (lifecycle_events.hpp), announced
  /// after its commit; nothing when the transport announces none.
  void announce(lifecycle_kind kind, const std::string& wf, std::optional<std::int32_t> node, const std::string& task,
                std::int32_t attempt, value err = {});
  /// Drops least recently used idle graphs while the cache holds more than
  /// `max_cached_nodes`, after a commit. `keep_newest` spares the most
  /// recently used one: the workflow a message is being handled for, when a
  /// full batch commits in the middle of it.
  void evict_idle(bool keep_newest = false);

 private:
  void publish_unsent();
  void answer_after_commit(std::uint64_t token, std::string reply);
  void control_status(const std::string& wf, std::uint64_t token);
  void control_dlq_list(std::uint64_t token);
  void control_list(const control_request& request, std::uint64_t token);
  void control_graph(const std::string& wf, std::uint64_t token);
  void control_dlq_replay(std::int64_t letter, std::uint64_t token);
  void control_revoke(const control_request& request, std::uint64_t token);
  expected<value> revoke_workflow(const std::string& wf, active_workflow& aw, bool terminate);
  expected<value> revoke_node(const std::string& wf, active_workflow& aw, std::int32_t node, bool terminate);
  void drop_unpublished(const std::string& wf, const std::vector<node_id>& leaves);
  void control_inspect(std::uint64_t token);
  /// `prune` and `forget` over the broker (dispatcher_retention.cpp).
  void control_prune(std::int64_t older_than_ms, std::uint64_t token);
  void control_forget(const std::string& wf, std::uint64_t token);
  void open_batch();
  void changed(std::size_t n = 1);
  void on_event(const std::string& raw);
  void check(const expected<void>& r);
  template <class T>
  T check(expected<T> r);

  void restore(const workflow_record& rec);
  /// A workflow's graph cached and started from its stored node rows (the
  /// restore replay), with the leaves that came out ready and the rows.
  struct replayed_graph {
    active_workflow& aw;
    graph_effects fx;
    std::unordered_map<node_id, node_record> rows;
  };
  replayed_graph replay_stored(const std::string& wf, canvas c);
  active_workflow& cache(const std::string& wf, canvas c);
  void uncache(const std::string& wf);
  active_workflow* find_active(const std::string& wf);
  active_workflow* rebuild(const std::string& wf);
  void process(const std::string& wf, active_workflow& aw, graph_effects& fx);
  void ready(const std::string& wf, active_workflow& aw, node_id leaf, graph_effects& fx);
  void dispatch(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt, graph_effects& fx);
  /// Fails the step of `task` (encoded: `bytes`) at once with
  /// `payload_too_large` and `message`, and dead-letters the message.
  void fail_oversized(const std::string& wf, active_workflow& aw, const envelope& task, const std::string& bytes,
                      const std::string& message, graph_effects& fx);
  void schedule(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt, epoch_ms due_at);
  void apply_outcome(const envelope& env, const std::string& raw, const std::string* lost_task = nullptr);
  /// A handler's replacement of itself (a `replace` event): its canvas
  /// checked as a submission's, stored with the outcome in this batch, and
  /// expanded in the leaf's place (dispatcher_replace.cpp). A canvas that is
  /// refused fails the step as a rejection (`invalid_workflow`).
  void apply_replace(const envelope& env, const std::string& raw);
  /// Attaches the stored replacements of `wf` to a graph about to replay.
  void attach_stored_replacements(const std::string& wf, workflow_graph& graph);
  /// Stores a progress report of the attempt a node is running; one for any
  /// other attempt (late, for a finished node or workflow, for another
  /// partition's workflow, for a node that is no task) is only counted.
  void apply_progress(const envelope& env);
  /// Stores a dead letter and logs a warning naming it; `error_type` is
  /// the failure's type for the log (empty: the reason is the type).
  void dead_letter(const std::string& reason, const std::string& error_text, const std::string& bytes,
                   const std::string& message_id, const std::string& wf, std::int32_t node, const std::string& task,
                   std::int32_t attempts, const std::string& error_type = {});
  /// Logs the warning of a failed attempt (every one, retried or not):
  /// one line with the workflow, node, task, error type and attempt, the
  /// message cut to `failure_log_bytes`, and what happens next.
  void log_failed_attempt(const envelope& env, const std::string& task, const std::string& next) const;
  envelope task_envelope(const std::string& wf, const active_workflow& aw, node_id leaf, std::int32_t attempt) const;
  const task_defaults& defaults_of(const std::string& task) const;
  std::string queue_of(const signature& sig) const;
  retry_policy policy_of(const signature& sig) const;
  /// Now in epoch ms, on the configured clock (dispatcher_config::clock).
  epoch_ms now_ms() const { return st_.cfg.clock->now_epoch_ms(); }

  dispatcher_pointer self_;
  dispatcher_state& st_;
};

template <class T>
T dispatcher_logic::check(expected<T> r) {
  if (!r) {
    throw store_failure{r.error()};
  }
  return std::move(*r);
}

}  // namespace trellis::detail
