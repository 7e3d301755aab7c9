#pragma once

/// @file
/// The worker pool: pulls task messages from its queues and runs handlers with
/// bounded concurrency on threads of its own, never on CAF's scheduler
/// threads, because handlers may block (I/O, sleeps, slow gateways).
///
/// Each thread fetches a small batch, runs it, reports the outcomes as one
/// batch of events and only then acks the task messages (acks after
/// execution). A message the worker cannot read, or that names a task it does
/// not have, is reported as `rejected` with the reason, so the dispatcher puts
/// it in the dead-letter store; the worker keeps running.

#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/worker_activity.hpp"
#include "trellis/canvas.hpp"
#include "trellis/defaults.hpp"
#include "trellis/metrics.hpp"
#include "trellis/task.hpp"
#include "trellis/transport/transport.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace trellis::detail {

class process_pool;

struct worker_pool_config {
  std::shared_ptr<transport> bus;
  /// Records consumer lag (queue wait) per queue and task.
  std::shared_ptr<metrics> stats;
  std::shared_ptr<const task_registry> tasks;
  /// Queues to consume; empty means every queue (embedded mode).
  std::vector<std::string> queues;
  /// Handler threads: at most this many handlers run at once.
  std::size_t concurrency = 2;
  /// Task messages one thread takes per fetch.
  std::size_t fetch_batch = defaults::fetch_batch;
  /// The size limits: a task message larger than the arguments allow is
  /// poison, a result larger than `max_result_bytes` fails its step.
  canvas_limits limits;
  /// Dispatcher partitions of the namespace: each outcome goes to the
  /// partition owning its workflow (transport/partition.hpp). 1 in-process.
  int partitions = 1;
  /// Handlers abandoned past their hard time limit that may still run
  /// before the pool takes no new task until one returns (handler_slot.hpp).
  std::size_t max_abandoned_handlers = defaults::max_abandoned_handlers;
  /// Where the threads record what they run (for `inspect`, and to stop a
  /// handler for a revoke with terminate) and learn which workflows and
  /// tasks are revoked (their queued messages are skipped). Its slot count
  /// must be at least `concurrency`. Unset: neither.
  std::shared_ptr<worker_activity> activity;
  /// How often the latest progress report of each running task is sent
  /// (progress_reporter.hpp).
  std::chrono::milliseconds progress_interval = defaults::progress_report_interval;
  /// Cluster workers with `--pool process`: the children that run the
  /// handlers, one per thread (at least `concurrency` slots). Unset: the
  /// handlers run on the pool's threads.
  std::shared_ptr<process_pool> processes;
};

/// Spawns the pool's actor (detached: draining joins threads, but never an
/// abandoned one) and its threads.
worker_pool_actor spawn_worker_pool(caf::actor_system& sys, worker_pool_config cfg);

}  // namespace trellis::detail
