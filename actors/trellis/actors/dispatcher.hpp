#pragma once

/// @file
/// The dispatcher: the only writer of workflow state. It accepts submissions,
/// expands canvases (workflow_graph), publishes the task messages of ready
/// nodes, applies outcome events, schedules retries and countdowns, writes dead
/// letters and answers status queries and, in cluster mode, control
/// requests (status, revoke, dead letters, inspect; docs/cluster.md).
///
/// Batching: the first state change after a commit opens a transaction and
/// sends the dispatcher a `flush` message, which lands behind everything
/// already in its mailbox. Everything that arrives before the flush shares the
/// transaction, so under load one fsync covers thousands of transitions and
/// when idle a single submission commits at once. Task messages are published
/// and callers answered only after the commit (transactional outbox: the
/// committed rows plus the canvas are the outbox; a crash before publishing
/// is repaired by restoring, which publishes every ready node again).
///
/// Memory: graphs are cached up to `max_cached_nodes`; idle ones beyond it
/// are evicted after a commit and rebuilt from the store, without
/// republishing, when their workflow needs them (decision 0011).
///
/// Failure: if the store refuses a read or a write, the dispatcher stops for
/// good with the store's error as its exit reason, and the supervisor does
/// not restart it (see `on_store_failure`). If it dies of anything else, the
/// supervisor restarts it and the new one restores from the last commit.

#include "trellis/actors/interfaces.hpp"
#include "trellis/canvas.hpp"
#include "trellis/clock.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/defaults.hpp"
#include "trellis/metrics.hpp"
#include "trellis/node_state.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/task.hpp"
#include "trellis/transport/transport.hpp"
#include "trellis/value.hpp"
#include "trellis/workflow_outcome.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace trellis::detail {

struct dispatcher_config {
  std::shared_ptr<sqlite_store> store;
  std::shared_ptr<transport> bus;
  std::shared_ptr<metrics> stats;
  /// Registration defaults by task name (queue, retry policy, time limit).
  std::map<std::string, task_defaults, std::less<>> defaults;
  /// Called after the commit that finished a workflow (from the dispatcher's thread).
  std::function<void(const workflow_outcome&)> on_finished;
  /// Called from the dispatcher's thread when its store refused a read or a
  /// write (disk full, read-only, corrupt), just before the dispatcher stops
  /// with that error as its exit reason. It is not restarted: a restart would
  /// run again the tasks whose outcomes could not be committed. The facade
  /// reports the error and stops; `resume` finishes the work once the store
  /// is usable again.
  std::function<void(const error&)> on_store_failure;
  /// Called after the commit that revoked a workflow or some of its tasks
  /// (control request `revoke`), from the dispatcher's thread, with the
  /// `revoked` notice for the workers: they skip the revoked tasks' queued
  /// messages and, when it says `terminate`, stop their running handlers.
  std::function<void(const control_request& notice)> on_revoked;
  /// Fields added to this dispatcher's answer to `inspect` (who it is, its
  /// partition); the dispatcher adds `role` and what it has in flight.
  value::map inspect_identity;
  canvas_limits limits;
  /// A batch is committed early once it holds this many changes.
  std::size_t max_batch = 16384;
  /// Workflow graphs kept in memory, counted in nodes. After a commit, the
  /// least recently used idle graphs beyond this are dropped (their state is
  /// all in the store) and rebuilt from the store, without publishing
  /// anything again, when their workflow next needs one (decision 0011).
  std::size_t max_cached_nodes = defaults::max_cached_nodes;
  /// Retention (docs/operations.md "Retention", decision 0036): how long
  /// finished workflows, idempotency keys and dead letters are kept, each
  /// from the time it finished or was stored; zero keeps them forever. A
  /// timer sweeps them in transactions of at most `retention_batch` rows
  /// every `retention_sweep_interval`, and at once again after a full one.
  /// Off here: the facades set them from `engine_config` and
  /// `cluster_options`, whose defaults are `defaults::*_expires`; a
  /// dispatcher made by hand (a test) has no timer it did not ask for.
  std::chrono::milliseconds result_expires{0};
  std::chrono::milliseconds idempotency_key_expires{0};
  std::chrono::milliseconds dead_letter_expires{0};
  std::chrono::milliseconds retention_sweep_interval = defaults::retention_sweep_interval;
  std::size_t retention_batch = defaults::retention_batch;
  /// Seed of the retry jitter; 0 draws one from the OS.
  std::uint64_t jitter_seed = 0;
  /// Where the dispatcher reads the time (due times, the times it stores,
  /// publish latency). The system's clocks, unless a test runs it on
  /// virtual time.
  std::shared_ptr<const detail::clock> clock = system_clocks();

  /// Cluster mode: the partition this dispatcher owns, of `partitions`
  /// (transport/partition.hpp). It refuses submissions of workflows another
  /// partition owns, handles only its own lost tasks, and dead-letters
  /// outcomes of another partition's workflows (a process with a different
  /// partition count). Embedded mode: 0 of 1.
  int partition = 0;
  int partitions = 1;
  /// Cluster mode: installs the sink of task messages the broker gave up on
  /// (bytes, deliveries, handle), as `transport::consume_events` does for
  /// events; called at every (re)start. Unset in embedded mode.
  std::function<void(std::function<void(std::string, std::int32_t, std::uint64_t)>)> watch_lost_tasks;
  /// Called after the commit that recorded a lost task, with its handle, so
  /// the broker drops it (and forgets that it was lost).
  std::function<void(std::uint64_t)> discard_lost_task;
  /// Called at once with the handle of a lost task another partition owns:
  /// the broker stops offering it to this dispatcher and leaves the task to
  /// its owner.
  std::function<void(std::uint64_t)> pass_lost_task;
};

/// Spawns a dispatcher on its own thread (it blocks on fsync) and restores
/// every unfinished workflow in the store before taking messages.
dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_config cfg);

}  // namespace trellis::detail
