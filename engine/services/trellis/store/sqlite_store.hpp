#pragma once

/// @file
/// The durable store of one dispatcher: workflows, nodes, attempts,
/// idempotency keys and dead letters in one SQLite file (WAL mode).
///
/// Threading: one `sqlite_store` object is used by one thread at a time (the
/// dispatcher is its only writer). Several processes may open the same file;
/// SQLite's locking serializes them and a busy database reports `store_locked`.
///
/// Durability: writes happen inside `begin()`/`commit()`; a batch of many
/// state changes shares one commit (group commit). `synchronous=FULL` by
/// default so a committed batch survives power loss; `NORMAL` survives a
/// process crash (SIGKILL), which is the promise Trellis makes.
///
/// Node rows exist only for leaves that have something durable to say (an
/// outcome, a scheduled retry, a started attempt). Everything else about a
/// workflow is derived again from its canvas, so restoring it after a crash is
/// a replay of the canvas against these rows.

#include "trellis/error.hpp"
#include "trellis/node_state.hpp"
#include "trellis/schedule.hpp"
#include "trellis/task_progress.hpp"
#include "trellis/value.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

/// Milliseconds since the Unix epoch.
using epoch_ms = std::int64_t;

struct store_options {
  /// "FULL" or "NORMAL" (PRAGMA synchronous).
  std::string synchronous = "FULL";
  /// How long a writer waits for a lock held by another connection before
  /// reporting `store_locked`.
  int busy_timeout_ms = 5000;
  /// Open an existing store without creating or migrating it, and refuse writes.
  bool read_only = false;
};

struct workflow_record {
  std::string id;
  /// The caller's submission key; a second submission with the same key is the same workflow.
  std::optional<std::string> submit_key;
  node_state state = node_state::pending;
  /// The canvas in its value shape (`to_value(canvas)`).
  value canvas;
  value result;
  /// A map {"task", "node", "type", "message"} when the workflow failed.
  value error;
  epoch_ms created_at = 0;
  epoch_ms finished_at = 0;
};

/// A workflow row without its canvas, result and error: a line of
/// `trellis list`.
struct workflow_summary {
  std::string id;
  std::optional<std::string> submit_key;
  node_state state = node_state::pending;
  epoch_ms created_at = 0;
  /// 0 while unfinished.
  epoch_ms finished_at = 0;
};

/// Where a page of `recent_workflows` continues: after this workflow, in
/// the order newest first (by creation time, then id).
struct workflow_cursor {
  epoch_ms created_at = 0;
  std::string id;
};

struct node_record {
  std::string workflow_id;
  std::int32_t node = 0;
  std::string task;
  node_state state = node_state::pending;
  /// Attempts made so far (1 after the first attempt).
  std::int32_t attempt = 0;
  value result;
  /// A map {"type", "message"} after a failure.
  value error;
  /// For `retry`: when the next attempt is due.
  epoch_ms due_at = 0;
  epoch_ms updated_at = 0;
  /// Attempts made before the current retry budget began: 0, or the attempt
  /// count at the last dead-letter replay. Attempt numbers keep growing across
  /// a replay (they are message ids); the budget counts from here.
  std::int32_t retry_base = 0;
};

/// One failed attempt, kept for visibility (`status` shows the history).
struct attempt_record {
  std::string workflow_id;
  std::int32_t node = 0;
  std::int32_t attempt = 0;
  std::string error_type;
  std::string error_message;
  epoch_ms finished_at = 0;
};

/// The latest progress report and custom state of a node's running (or
/// last reporting) attempt. Kept apart from the node row, which it never
/// changes: a restore does not read it.
struct progress_record {
  std::string workflow_id;
  std::int32_t node = 0;
  std::string task;
  /// The attempt that reported it.
  std::int32_t attempt = 0;
  task_progress progress;
  epoch_ms updated_at = 0;
};

struct dead_letter_record {
  std::int64_t id = 0;
  /// The envelope's message id when it could be decoded, else empty.
  std::string message_id;
  std::string workflow_id;
  /// -1 when the message could not be tied to a node.
  std::int32_t node = -1;
  std::string task;
  /// The errc name that sent it here, e.g. "unsupported_version".
  std::string reason;
  /// The specific error text.
  std::string error;
  std::int32_t attempts = 0;
  /// The original bytes, exactly as received.
  std::string envelope;
  epoch_ms created_at = 0;
  /// 0 until replayed.
  epoch_ms replayed_at = 0;
};

/// The canvas leaf `node` replaced itself with in attempt `attempt`; its
/// nodes start at `first_node` (`workflow_graph::attach_replacement`).
struct replacement_record {
  std::string workflow_id;
  std::int32_t node = 0;
  std::int32_t attempt = 0;
  std::int32_t first_node = 0;
  value canvas;
  epoch_ms created_at = 0;
};

/// A periodic schedule's row (docs/schedules.md): what it submits, when,
/// and what the scheduler has decided so far. `revision` grows with every
/// write; every update names the revision it read (compare-and-set), so a
/// scheduler and a `schedule` command writing at once never lose a change.
struct schedule_record {
  schedule_spec spec;
  /// The canvas in its value shape (`to_value(canvas)`).
  value canvas;
  /// The workflow file it was added from, for display.
  std::string source;
  bool paused = false;
  schedule_state state;
  /// The workflow of the latest submission, whose state the overlap policy reads.
  std::optional<std::string> last_workflow_id;
  /// A `trigger` not yet submitted: the time it was asked for.
  std::optional<epoch_ms> trigger_at;
  std::int64_t revision = 0;
  epoch_ms updated_at = 0;
};

class sqlite_store {
 public:
  /// Opens (creating and migrating as needed) the store at `path`; ":memory:"
  /// gives a private in-memory store. Throws `setup_error` with
  /// `store_corrupt` for a file that is not a Trellis store or is damaged, or
  /// a schema newer than this build, and `store_locked`/`store_failed` otherwise.
  static std::unique_ptr<sqlite_store> open(const std::string& path, const store_options& options = {});

  ~sqlite_store();
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  /// The schema version this build writes.
  static int current_schema_version() noexcept;
  /// The schema version of the open file.
  int schema_version() const;

  /// Starts a write batch (BEGIN IMMEDIATE).
  expected<void> begin();
  /// Commits the batch; one fsync for everything written since `begin`.
  expected<void> commit();
  /// Abandons the batch.
  void rollback() noexcept;

  // -- writes (inside begin/commit) -------------------------------------------

  expected<void> insert_workflow(const workflow_record& w);
  expected<void> finish_workflow(const std::string& id, node_state state, const value& result, const value& error,
                                 epoch_ms at);
  /// Puts a finished workflow back to `started` (dead-letter replay).
  expected<void> reopen_workflow(const std::string& id);
  /// Inserts or replaces the row of (workflow_id, node).
  expected<void> upsert_node(const node_record& n);
  expected<void> insert_attempt(const attempt_record& a);
  /// Records a replacement; a second one for the same node is an error
  /// (the graph's once-only guard never asks for one).
  expected<void> insert_replacement(const replacement_record& r);
  /// Inserts or replaces the progress of (workflow_id, node).
  expected<void> upsert_progress(const progress_record& p);
  /// Records that `key` succeeded with `result`. A key that exists is kept
  /// unchanged (the first success wins).
  expected<void> put_idempotency_key(const std::string& key, const value& result, const std::string& workflow_id,
                                     std::int32_t node, epoch_ms at);
  /// Returns the new dead letter's id.
  expected<std::int64_t> insert_dead_letter(const dead_letter_record& d);
  expected<void> mark_dead_letter_replayed(std::int64_t id, epoch_ms at);

  // -- reads ------------------------------------------------------------------

  expected<std::optional<workflow_record>> find_workflow(const std::string& id);
  expected<std::optional<workflow_record>> find_workflow_by_key(const std::string& submit_key);
  /// Workflows not yet SUCCESS/FAILURE/REVOKED, oldest first.
  expected<std::vector<workflow_record>> unfinished_workflows();
  /// The `limit` newest workflows (by submission time, then id), newest
  /// first; with `state`, only those in it; with `after`, only those that
  /// come after it in that order (the next page).
  expected<std::vector<workflow_summary>> recent_workflows(std::size_t limit, std::optional<node_state> state,
                                                           const std::optional<workflow_cursor>& after = std::nullopt);
  /// The node rows of a workflow, by node id.
  expected<std::vector<node_record>> nodes_of(const std::string& workflow_id);
  expected<std::vector<attempt_record>> attempts_of(const std::string& workflow_id);
  /// The replacements of a workflow, by `first_node`: the order to attach them.
  expected<std::vector<replacement_record>> replacements_of(const std::string& workflow_id);
  /// The progress rows of a workflow, by node id.
  expected<std::vector<progress_record>> progress_of(const std::string& workflow_id);
  expected<std::optional<value>> find_idempotency_key(const std::string& key);
  /// Dead letters, newest first; `include_replayed` adds those already replayed.
  expected<std::vector<dead_letter_record>> dead_letters(bool include_replayed = false);
  expected<std::optional<dead_letter_record>> find_dead_letter(std::int64_t id);

  // -- retention (store_retention.cpp; docs/decisions/0036-retention.md) --------
  //
  // The deletes run inside begin/commit like every write, so the dispatcher
  // (the store's only writer) bounds each transaction by `limit`.

  /// Ids of at most `limit` workflows that finished (SUCCESS, FAILURE,
  /// REVOKED) before `before`, the longest finished first. Unfinished
  /// workflows are never listed.
  expected<std::vector<std::string>> expired_workflows(epoch_ms before, std::size_t limit);
  /// Deletes a finished workflow with its nodes, attempts, progress and
  /// replacements; returns the rows deleted. `not_found` when the store does
  /// not hold it, `invalid_workflow` when it is not finished (it is kept).
  /// Its idempotency keys and dead letters are kept: they have retentions
  /// of their own.
  expected<std::size_t> delete_workflow(const std::string& id);
  /// Deletes at most `limit` idempotency keys recorded before `before`,
  /// oldest first; returns how many. A step whose key is gone runs again.
  expected<std::size_t> prune_idempotency_keys(epoch_ms before, std::size_t limit);
  /// Deletes at most `limit` dead letters (replayed or not) stored before
  /// `before`, oldest first; returns how many.
  expected<std::size_t> prune_dead_letters(epoch_ms before, std::size_t limit);

  // -- schedules (store_schedules.cpp) ------------------------------------------
  // Each is a transaction of its own, outside begin/commit: the scheduler
  // and the `schedule` commands write schedules on connections of their own,
  // beside the dispatcher's, and SQLite serializes the writers.

  /// Adds a schedule at revision 1. Errors: `invalid_config` when one of
  /// that name exists, the store's.
  expected<void> insert_schedule(const schedule_record& s);
  /// Writes `s` if its row is still at `s.revision` (then at `s.revision + 1`).
  /// Returns false when the row changed or went away meanwhile.
  expected<bool> update_schedule(const schedule_record& s);
  /// Deletes a schedule; false when there was none.
  expected<bool> delete_schedule(const std::string& name);
  expected<std::optional<schedule_record>> find_schedule(const std::string& name);
  /// Every schedule, by name.
  expected<std::vector<schedule_record>> schedules();

 private:
  struct impl;
  explicit sqlite_store(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace trellis::detail
