#pragma once

/// @file
/// Cluster mode's processes: the same supervisor, dispatcher and worker-pool
/// actors as embedded mode, on a NATS JetStream transport instead of the
/// in-process one. A process runs either a worker pool only
/// (`trellis-demo worker`) or a dispatcher only (`trellis-demo dispatcher`,
/// which owns the SQLite store). Clients submit over NATS and hear about
/// finished workflows on `trellis.<ns>.done.<workflow>` (docs/cluster.md).

#include "trellis/error.hpp"
#include "trellis/task.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace trellis::detail {

/// How a cluster process connects and what it serves.
struct cluster_options {
  /// NATS servers, e.g. `nats://127.0.0.1:4222`; at least one.
  std::vector<std::string> broker_urls;
  /// The Trellis namespace (`trellis.<ns>.…`).
  std::string ns = "default";
  /// Worker: queues to serve; empty serves every queue (consumer `all-queues`).
  std::vector<std::string> queues;
  /// Worker: handler threads (0: one per hardware thread).
  std::size_t concurrency = 0;
  /// Worker: task messages one handler thread takes per fetch. Small, so a
  /// slow batch does not hold many unacked messages past the AckWait.
  std::size_t fetch_batch = 16;
  /// JetStream AckWait of the consumers this process declares: how long an
  /// unacked task (worker) or event (dispatcher) waits before redelivery.
  std::chrono::milliseconds ack_wait{30'000};
  /// JetStream replicas of the task and event streams this process declares:
  /// 1 on a single server, 3 in a 3-node cluster (survives losing one node).
  /// Give every process the same value; the last one to start sets it.
  int replicas = 1;
  /// Dispatcher: the SQLite store.
  std::string db = "trellis.db";
};

class cluster_node_core;

/// One running cluster process: the actor system, its supervisor and the
/// NATS transport. Destroying it drains, as `shutdown()`.
class cluster_node {
 public:
  /// Connects and starts a supervisor with only a worker pool running the
  /// handlers of `tasks`. Errors: `invalid_config` (options, an empty
  /// registry), `broker_unavailable`.
  static expected<std::unique_ptr<cluster_node>> start_worker(const cluster_options& opts, task_registry tasks);

  /// Opens the store, connects and starts a supervisor with only a
  /// dispatcher. It takes submissions from `trellis.<ns>.submit.0`, answers
  /// each after its commit and publishes every finished workflow as a
  /// msgpack map {id, state, result, error} on `trellis.<ns>.done.<id>`.
  /// `tasks` gives the registration defaults (queue, retries) by task name;
  /// it may be empty. Errors as `start_worker`; the store throws
  /// `setup_error` as for an engine.
  static expected<std::unique_ptr<cluster_node>> start_dispatcher(const cluster_options& opts,
                                                                  const task_registry& tasks);

  ~cluster_node();
  cluster_node(const cluster_node&) = delete;
  cluster_node& operator=(const cluster_node&) = delete;

  /// Drains as the engine does (workers finish the tasks in hand and report;
  /// the dispatcher commits), then stops. Idempotent.
  void shutdown();

 private:
  explicit cluster_node(std::unique_ptr<cluster_node_core> core);
  std::unique_ptr<cluster_node_core> core_;
};

}  // namespace trellis::detail
