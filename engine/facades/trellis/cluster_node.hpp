#pragma once

/// @file
/// Cluster mode's processes: the same supervisor, dispatcher and worker-pool
/// actors as embedded mode, on a NATS JetStream transport instead of the
/// in-process one. A process runs either a worker pool only
/// (`trellis-demo worker`) or dispatchers only (`trellis-demo dispatcher`).
/// Clients submit over NATS and hear about finished workflows on
/// `trellis.<ns>.done.<workflow>` (docs/cluster.md).
///
/// Partitions (docs/decisions/0009-partitions-and-failover.md): a namespace
/// has `partitions` dispatcher partitions and a workflow belongs to
/// `partition_of(id, partitions)`. A dispatcher process owns a set of them;
/// for each it runs its own supervisor and dispatcher actor, NATS
/// connection (event consumer `dispatcher-<p>`, submissions on
/// `trellis.<ns>.submit.<p>`) and SQLite store (`partition_store_path`),
/// which it holds an exclusive lock on (store/store_lock.hpp).

#include "trellis/canvas.hpp"
#include "trellis/defaults.hpp"
#include "trellis/error.hpp"
#include "trellis/http_options.hpp"
#include "trellis/task.hpp"
#include "trellis/transport/nats_config.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trellis::detail {

/// Where a worker runs its handlers.
enum class pool_kind : std::uint8_t {
  /// On threads of the worker process (the default): cheapest, but a
  /// handler that crashes takes the process down, and one past its hard
  /// limit is abandoned, still running.
  thread,
  /// Each in a child process of its own (Celery's prefork): a crash or a
  /// hard limit costs only the child, which is replaced
  /// (docs/decisions/0023-process-pool.md).
  process,
};

/// "thread" or "process".
const char* to_string(pool_kind kind) noexcept;

/// How a cluster process connects and what it serves.
struct cluster_options {
  /// NATS servers, e.g. `nats://127.0.0.1:4222`; at least one.
  std::vector<std::string> broker_urls;
  /// The Trellis namespace (`trellis.<ns>.…`).
  std::string ns = "default";
  /// Worker: queues to serve; empty serves every queue (consumer `all-queues`).
  std::vector<std::string> queues;
  /// Worker: handler threads (0: one per hardware thread); with the
  /// process pool, also the number of handler children.
  std::size_t concurrency = 0;
  /// Worker: where handlers run (`--pool thread|process`).
  pool_kind pool = pool_kind::thread;
  /// Worker: task messages one handler thread takes per fetch (why 64:
  /// defaults.hpp).
  std::size_t fetch_batch = defaults::fetch_batch;
  /// Worker: handlers abandoned past their hard time limit that may still
  /// run before it takes no new task until one returns.
  std::size_t max_abandoned_handlers = defaults::max_abandoned_handlers;
  /// Dispatcher: the most tasks of a large submission packed into one
  /// JetStream message (`nats_config::task_pack_max`; 1 never packs).
  /// Worker: the pack size its first pull request assumes.
  int task_pack = 32;
  /// JetStream AckWait of the consumers this process declares: how long a
  /// task (worker) or event (dispatcher) whose holder stopped marking it in
  /// progress waits before redelivery.
  std::chrono::milliseconds ack_wait = defaults::ack_wait;
  /// JetStream replicas of the task and event streams this process declares:
  /// 1 on a single server, 3 in a 3-node cluster (survives losing one node).
  /// Give every process the same value; the last one to start sets it.
  int replicas = 1;
  /// Dispatcher: the SQLite store; with several partitions, the name the
  /// store of each partition is derived from (`partition_store_path`).
  std::string db = defaults::store_path;
  /// Dispatcher partitions of the namespace, 1 or more. Every process of a
  /// namespace (clients, workers, dispatchers) must use the same count
  /// (`partition_of`); clients route submissions and per-workflow control
  /// requests (status, revoke) by it.
  int partitions = 1;
  /// Dispatcher: workflow graph nodes kept in memory; idle workflows
  /// beyond it are rebuilt from the store when needed (decision 0011).
  std::size_t max_cached_nodes = defaults::max_cached_nodes;
  /// Dispatcher: retention (docs/operations.md "Retention"), as
  /// `engine_config`'s: finished workflows, idempotency keys and dead
  /// letters are deleted this long after they finished or were stored;
  /// zero keeps them forever.
  std::chrono::milliseconds result_expires = defaults::result_expires;
  std::chrono::milliseconds idempotency_key_expires = defaults::idempotency_key_expires;
  std::chrono::milliseconds dead_letter_expires = defaults::dead_letter_expires;
  /// Client, dispatcher and worker: the size limits (a submission, one
  /// task's arguments, one result; canvas.hpp). Give every process of a
  /// namespace the same values: a client checks a submission, the
  /// dispatcher a submission and each task message, a worker each task
  /// message and result.
  canvas_limits limits;
  /// Dispatcher: the partitions it owns, each in [0, partitions); empty
  /// owns every partition.
  std::vector<int> owns;
  /// Dispatcher: a partition whose store another dispatcher holds is waited
  /// for (`cluster_node::take_over`) instead of failing with store_locked.
  bool standby = false;
  /// JetStream MaxDeliver of the consumers this process declares: a task
  /// delivered this often without an ack is "worker lost".
  int max_deliver = 5;
  /// Worker and dispatcher: how long to keep trying at start while no NATS
  /// server answers (pauses from 100 ms doubling to 2 s), before failing
  /// with `broker_unavailable`; 0 tries once. Refused credentials and TLS
  /// failures are reported at once. Clients never wait.
  std::chrono::milliseconds broker_wait = defaults::broker_wait;

  /// Connection security (user, password, token, creds file, TLS files,
  /// signing key), passed to `nats_config::security` as is (see
  /// broker_security). The password and token are secrets: never printed.
  broker_security security;
  /// Worker and dispatcher: the HTTP endpoint (`--http`): this process's
  /// metrics and readiness, the namespace's JSON API, task events and the
  /// dashboard (docs/operations.md "HTTP"); off unless `http.listen` is set.
  http_options http;
  /// Worker and dispatcher: announce task events on `trellis.<ns>.lifecycle`
  /// (`--no-task-events` turns it off).
  bool task_events = true;
  /// Worker and dispatcher: run against a broker off loopback even with
  /// neither authentication nor signing. Without it they refuse to start
  /// there (`invalid_config`), since anyone who can publish on such a
  /// broker could make workers run any task (docs/cluster.md, Security).
  bool insecure = false;
};

/// The store of `partition`: `db` itself when there is one partition, else
/// `<stem>-p<partition><extension>` beside it (`cluster.db` -> `cluster-p1.db`).
std::string partition_store_path(const std::string& db, int partition, int partitions);

/// The NATS connection settings of a cluster process: `opts`' broker,
/// namespace, AckWait and security, under the client name `client_name`.
nats_config nats_config_for(const cluster_options& opts, const std::string& client_name);

class cluster_node_core;

/// One running cluster process: the actor system, its supervisor and the
/// NATS transport. Destroying it drains, as `shutdown()`.
///
/// Both kinds answer control requests (docs/cluster.md "Control"): a worker
/// answers `inspect` and skips queued tasks of workflows it is told are
/// revoked; a dispatcher answers `status`, `revoke`, `dlq` and `inspect` for
/// its partition.
class cluster_node {
 public:
  /// Connects and starts a supervisor with only a worker pool running the
  /// handlers of `tasks`. With `opts.pool == pool_kind::process` it first
  /// forks the process pool's zygote, so it must then be called while the
  /// process has a single thread. Errors: `invalid_config` (options, an
  /// empty registry, a process pool asked for in a threaded process),
  /// `broker_unavailable`. Once running, `take_over` reports
  /// `process_pool_failed` if the process pool can no longer run handlers.
  static expected<std::unique_ptr<cluster_node>> start_worker(const cluster_options& opts, task_registry tasks);

  /// Starts a dispatcher for every owned partition: takes the store's lock,
  /// opens the store, connects and starts a supervisor with only a
  /// dispatcher. Each takes submissions from `trellis.<ns>.submit.<p>`,
  /// answers each after its commit, publishes every finished workflow as a
  /// msgpack map {id, state, result, error} on `trellis.<ns>.done.<id>`, and
  /// records the tasks JetStream gave up delivering ("worker lost").
  /// `tasks` gives the registration defaults (queue, retries) by task name;
  /// it may be empty. Errors as `start_worker`, plus `store_locked` when
  /// another dispatcher holds an owned partition's store (unless
  /// `opts.standby`: then that partition waits for `take_over`) and the
  /// store's errors (`store_failed`, `store_corrupt`).
  static expected<std::unique_ptr<cluster_node>> start_dispatcher(const cluster_options& opts,
                                                                  const task_registry& tasks);

  /// A standby dispatcher: tries once, without waiting, to take the store
  /// lock of every owned partition not served yet, and starts serving each
  /// one it got. Returns how many owned partitions still wait (0 for a
  /// worker, or once all are served). Errors as `start_dispatcher`, except
  /// that a held lock is not one; and once a dispatcher of this process
  /// stopped because its store failed (disk full, read-only), that store
  /// error: the process must then shut down (the CLI exits 3), since the
  /// dispatcher is not restarted.
  expected<std::size_t> take_over();

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
