#pragma once

/// @file
/// The engine: runs workflows with the handlers of a task registry. Embedded
/// mode keeps everything in this process with one SQLite file; the engine
/// owns the actor system, the store and the transport.
///
/// @code
/// trellis::engine_config cfg;
/// cfg.store_path = "orders.db";
/// trellis::engine engine{cfg, tasks};
/// auto run = engine.submit(trellis::chain(add.with(2, 2), add.with(4)));
/// auto result = run->wait_for(std::chrono::seconds{5});   // 8
/// @endcode
///
/// Guarantees: `submit` returns after the workflow is committed to the store;
/// a process killed at any instant afterwards loses nothing, because opening
/// the same store again finishes every unfinished workflow in it. Outcomes are
/// applied once: a step's effect is recorded once even when its task ran twice.

#include "trellis/canvas.hpp"
#include "trellis/defaults.hpp"
#include "trellis/error.hpp"
#include "trellis/http_options.hpp"
#include "trellis/metrics_format.hpp"
#include "trellis/node_state.hpp"
#include "trellis/schedule_book.hpp"
#include "trellis/task.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trellis {

/// Everything an engine needs, with defaults that work.
struct engine_config {
  /// The SQLite file of workflow state; ":memory:" keeps it in RAM (nothing
  /// survives the process).
  std::string store_path = defaults::store_path;
  /// SQLite `synchronous`: "FULL" survives power loss, "NORMAL" survives a
  /// process crash. Either way one fsync covers a whole batch.
  std::string synchronous = "FULL";
  /// Handler threads in this process (0: one per hardware thread).
  std::size_t concurrency = 0;
  /// Queues this process's workers consume; empty means all of them.
  std::vector<std::string> queues;
  /// State changes per store transaction, at most.
  std::size_t max_batch = 16384;
  /// Workflow graphs the dispatcher keeps in memory, in nodes; idle ones
  /// beyond it are evicted and rebuilt from the store when needed (decision 0011).
  std::size_t max_cached_nodes = defaults::max_cached_nodes;
  /// Task messages a worker thread takes per fetch.
  std::size_t fetch_batch = defaults::fetch_batch;
  /// Handlers left running past their hard time limit (abandoned) that may
  /// still run before the workers take no new task until one returns, 1 to
  /// `defaults::max_concurrency` (docs/operations.md, "Time limits").
  std::size_t max_abandoned_handlers = defaults::max_abandoned_handlers;
  /// Bounds on submitted workflows: their shape, and the encoded size of a
  /// submission, of one task's arguments and of one result.
  canvas_limits limits;
  /// Retention (docs/operations.md "Retention"): a finished workflow, with
  /// its nodes, attempts, progress and result, is deleted this long after it
  /// finished (Celery's `result_expires`); an idempotency key this long after
  /// it was recorded (an expired key lets its step's effect happen again);
  /// a dead letter this long after it was stored. Zero keeps them forever;
  /// at most `defaults::max_expires`.
  std::chrono::milliseconds result_expires = defaults::result_expires;
  std::chrono::milliseconds idempotency_key_expires = defaults::idempotency_key_expires;
  std::chrono::milliseconds dead_letter_expires = defaults::dead_letter_expires;
  /// Seed of the retry jitter (0: random). Tests set it to be repeatable.
  std::uint64_t jitter_seed = 0;
  /// The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, the JSON API, task
  /// events and the dashboard; docs/operations.md "HTTP"); off unless
  /// `http.listen` is set.
  http_options http;
  /// Run the store's periodic schedules (docs/schedules.md) while the engine
  /// runs. Needs a store file: an in-memory store has no schedules.
  bool run_schedules = true;
  /// Where the scheduler reads the time (epoch milliseconds); empty: the
  /// system clock. Tests replace it.
  std::function<std::int64_t()> scheduler_now;
};

/// Checks `cfg`; the error (`errc::invalid_config`) names the first bad field.
expected<void> validate(const engine_config& cfg);

namespace detail {
struct completion_slot;
class engine_core;
class embedded_scheduler;
}  // namespace detail

/// A submitted workflow. Cheap to copy; all copies see the same outcome.
class workflow_handle {
 public:
  const std::string& id() const noexcept { return id_; }

  /// Blocks until the workflow finishes or `timeout` passes. SUCCESS gives
  /// the result; FAILURE gives `errc::workflow_failed` whose message names the
  /// failed task and its error (details in `error_details()`); REVOKED gives
  /// `errc::revoked` (see `engine::revoke`); a timeout gives
  /// `errc::timeout` and the workflow carries on. If the engine's store
  /// fails first (disk full, read-only), the store's error (`store_failed`,
  /// `store_corrupt`): the engine has stopped and the workflow stays
  /// unfinished in the store, for `resume` once the store is usable.
  expected<value> wait_for(std::chrono::milliseconds timeout) const;

  /// SUCCESS, FAILURE or REVOKED once finished; STARTED before.
  node_state state() const;

  /// After FAILURE or REVOKED: {"task", "node", "type", "message"} ("task"
  /// and "node" absent when the whole workflow was revoked); nil otherwise.
  value error_details() const;

 private:
  friend class detail::engine_core;
  workflow_handle(std::string id, std::shared_ptr<detail::completion_slot> slot)
      : id_(std::move(id)), slot_(std::move(slot)) {}
  std::string id_;
  std::shared_ptr<detail::completion_slot> slot_;
};

/// What `engine::revoke` revokes, and how.
struct revoke_options {
  /// One node of the workflow, numbered as `trellis status` lists them (a
  /// chain, group or chord node stands for every task under it); empty:
  /// the whole workflow.
  std::optional<std::int32_t> node;
  /// Also stop the handlers running the revoked tasks: their stop token at
  /// once (`task_context::cancelled()`), and a handler with a hard time
  /// limit that has not returned `defaults::terminate_grace` later is
  /// abandoned, as at its limit. Without it a running handler finishes and
  /// its result is discarded.
  bool terminate = false;
};

/// Which workflows `engine::workflows` and `client::workflows` list.
struct workflow_query {
  /// Only workflows in this state; every state when unset.
  std::optional<node_state> state;
  /// The most workflows in the page, 1 to 10,000.
  std::size_t limit = 20;
  /// The `next` of the page before; empty: from the newest.
  std::string cursor;
};

/// An embedded engine: dispatcher, worker pool and supervisor actors on an
/// in-process transport, with one SQLite store.
class engine {
 public:
  /// Opens (creating or migrating) the store, restores every unfinished
  /// workflow in it and starts the workers. First it takes the store's lock
  /// (`<store>.lock`, trellis/store/store_lock.hpp): one process per store.
  /// Throws `setup_error` when the store is in use by another process
  /// (`store_locked`, naming its PID), cannot be opened (`store_corrupt`,
  /// `store_failed`) or the config is invalid. Once running, a store that
  /// refuses a write stops the engine: every call and wait then returns that
  /// error, and nothing is run again.
  engine(engine_config cfg, task_registry tasks);
  /// Drains: stops taking tasks, lets running handlers finish, commits.
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Submits a workflow and returns once it is committed. With `key`, a
  /// second submission of the same key returns the first workflow instead of
  /// starting another. Errors: `unknown_task` (naming the place),
  /// `invalid_workflow`, `payload_too_large` (a workflow that encodes past
  /// `canvas_limits::max_submission_bytes`; nothing is stored), `shutting_down`.
  expected<workflow_handle> submit(const canvas& flow, std::optional<std::string> key = std::nullopt);

  /// Handles on the workflows that were unfinished when the store was opened
  /// and are being finished now. Throws `setup_error` if the store failed
  /// while they were read back (see the constructor).
  std::vector<workflow_handle> restored();

  /// A handle on any workflow in the store, finished or not; `not_found` if absent.
  expected<workflow_handle> find(const std::string& workflow_id);

  /// Every dead letter in the store, newest first, replayed ones included:
  /// the rows `trellis dlq list` prints, each a map {id, reason, error,
  /// workflow_id, node, task, attempts, message_id, bytes, created_at,
  /// replayed} (docs/cli.md "Dead-letter line"). The dispatcher reads them on
  /// its own thread once what it holds is committed, so the letter of a
  /// workflow that `wait_for` saw fail is there. Errors: the store's,
  /// `shutting_down`, `timeout`.
  expected<value::array> dead_letters();

  /// The status document of a workflow, as `trellis status` prints it
  /// (docs/cli.md "Status line"): {id, state, result, error, nodes,
  /// failed_attempts}, each node with the `progress` and `custom_state` its
  /// handler reported, while it runs and after. Read by the dispatcher on its
  /// own thread once what it holds is committed. Errors: `not_found`, the
  /// store's, `shutting_down`, `timeout`.
  expected<value> status(const std::string& workflow_id);

  /// A page of the store's workflows, newest first: {workflows: [{id,
  /// state, created_at, finished_at, key}], next: a cursor for the next
  /// page, or nil at the end} (docs/cli.md "Listing workflows"). Errors:
  /// `invalid_config` (a limit out of range), `malformed_envelope` (a
  /// cursor no page ended with), the store's, `shutting_down`, `timeout`.
  expected<value> workflows(const workflow_query& query = {});

  /// A workflow's canvas as a graph: every node with its kind, parent,
  /// children, task, state, attempts, last change, progress and error
  /// (docs/operations.md "HTTP", `GET /api/workflows/ID`). Errors as `status`.
  expected<value> graph(const std::string& workflow_id);

  /// Runs a dead-lettered node again with a fresh retry budget, reopening
  /// its workflow. Errors: `not_found`, or `invalid_workflow` for a dead
  /// letter that belongs to no node (undecodable bytes).
  expected<workflow_handle> replay_dead_letter(std::int64_t id);

  /// Deletes every workflow that finished more than `older_than` ago, with
  /// its nodes, attempts, progress and result (what `result_expires` does on
  /// its own, by hand; docs/operations.md "Retention"). The dispatcher does
  /// it in transactions of at most `defaults::retention_batch` workflows and
  /// returns how many it deleted, once committed. Unfinished workflows are
  /// never deleted; idempotency keys and dead letters keep their own
  /// retention. Errors: `invalid_config` (a negative or too long
  /// `older_than`), the store's, `shutting_down`, `timeout`.
  expected<std::int64_t> prune(std::chrono::milliseconds older_than);

  /// Deletes one finished workflow with its nodes, attempts, progress and
  /// result, once committed. Errors: `not_found`, `invalid_workflow` (it has
  /// not finished: it is kept), the store's, `shutting_down`, `timeout`.
  expected<void> forget(const std::string& workflow_id);

  /// Revokes a workflow, or one node of it (Celery's `revoke`), and returns
  /// once that is committed. Revoked tasks that have not started never run;
  /// their state, and the workflow's, are REVOKED. A revoked node ends its
  /// chain and group as REVOKED and fails its chord (docs/canvas.md,
  /// "Revoking"). Returns the dispatcher's answer: {id, state, result,
  /// error} for a whole workflow, {id, node, state, revoked: [task nodes]}
  /// for a node. Errors: `not_found` (no such workflow or node),
  /// `invalid_workflow` (it finished already), `shutting_down`, `timeout`.
  expected<value> revoke(const std::string& workflow_id, revoke_options options = {});

  /// Counters, histograms and gauges as Prometheus text, or OpenMetrics
  /// text with `metrics_format::openmetrics` (docs/operations.md, Metrics).
  /// Every family has `# HELP` and `# TYPE`, and every registered task's
  /// series are there from the start, at zero.
  std::string metrics_text(metrics_format format = metrics_format::prometheus) const;

  /// The port the HTTP endpoint listens on (the one chosen for port 0 in
  /// `engine_config::http`); 0 without an endpoint.
  int http_port() const noexcept;

  // -- periodic schedules (docs/schedules.md) -------------------------------
  // They live in the store and run while an engine holds it. Each call
  // takes effect at once; errors: `invalid_config` (a bad definition, a name
  // in use, an in-memory store or `run_schedules` off), `not_found`, the store's.

  /// Adds a schedule; its first tick is after now.
  expected<void> add_schedule(const schedule_definition& def);
  /// Every schedule, as `trellis schedule list` prints them.
  expected<value::array> schedules();
  expected<void> pause_schedule(const std::string& name);
  /// Resumes; ticks that fell while paused are passed over.
  expected<void> resume_schedule(const std::string& name);
  /// Submits one run now, whatever the schedule's times, pause and overlap policy.
  expected<void> trigger_schedule(const std::string& name);
  /// Deletes the schedule; the workflows it started carry on.
  expected<void> delete_schedule(const std::string& name);

  /// Drains and stops; idempotent. Later submissions fail with `shutting_down`.
  void shutdown();

 private:
  std::unique_ptr<detail::engine_core> core_;
  // Declared after the core: stopped and destroyed before it.
  std::unique_ptr<detail::embedded_scheduler> scheduler_;
};

}  // namespace trellis
