#pragma once

/// @file
/// The seed's metrics list, per queue and task name: publish latency,
/// consumer lag, retry volume, dead-letter counts, throughput and handler
/// duration. Exposed as Prometheus or OpenMetrics text
/// (`engine::metrics_text()`, `trellis metrics`; docs/operations.md lists
/// every family).
///
/// Thread-safe. Recording is a hash lookup plus atomic adds; callers on hot
/// paths record once per batch where they can.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace trellis {
class task_registry;
}  // namespace trellis

namespace trellis::detail {

/// Counter names (all `_total`).
enum class counter : std::uint8_t {
  tasks_published,  ///< task messages handed to the transport
  tasks_succeeded,  ///< outcomes applied as success (throughput)
  tasks_failed,     ///< nodes failed for good
  retries,          ///< attempts scheduled again (retry volume)
  dead_letters,     ///< messages sent to the dead-letter store
  duplicates,       ///< outcomes ignored because already applied
  idempotent_hits,  ///< steps answered from a stored idempotency key
  workflows_submitted,
  workflows_finished,
  graph_evictions,     ///< idle workflow graphs dropped from the dispatcher's cache
  graph_rebuilds,      ///< evicted graphs read back from the store (cache misses)
  abandoned_handlers,  ///< handlers left running past their hard time limit
  tasks_revoked,       ///< task nodes revoked by request
  progress_reports,    ///< progress reports stored
  progress_ignored,    ///< progress reports of no running attempt, dropped
  rate_limit_gate_errors,  ///< rate-limit slots that could not be reserved (broker away); tried again
  /// Process-pool children that died running a task (a crash, a broken
  /// reply) and were replaced (trellis_worker_children_crashed_total).
  children_crashed,
  /// Process-pool children killed at a task's hard time limit and replaced
  /// (trellis_worker_children_killed_total).
  children_killed,
  /// Rows deleted by retention: expired workflows (with their nodes,
  /// attempts, progress, replacements), idempotency keys, dead letters,
  /// and what `prune` and `forget` delete by hand (trellis_pruned_rows_total).
  rows_pruned,
};

/// Gauge names: process-wide values, without labels.
enum class gauge : std::uint8_t {
  abandoned_handlers,  ///< abandoned handler threads still running
};

/// Histogram names (seconds).
enum class histogram : std::uint8_t {
  publish_latency,   ///< node ready -> task message handed to the transport
  queue_wait,        ///< task message published -> handler started (consumer lag)
  handler_duration,  ///< handler run time
  rate_limit_wait,   ///< a rate-limited task's wait for its start slot (only waits > 0)
};

/// Which series a process records, for `metrics::declare_task`.
enum class metrics_role : std::uint8_t {
  dispatcher,  ///< publishes tasks and applies their outcomes
  worker,      ///< runs handlers
  embedded,    ///< both, in one process
};

class metrics {
 public:
  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  void add(counter c, const std::string& queue, const std::string& task, std::uint64_t n = 1);
  void observe(histogram h, const std::string& queue, const std::string& task, double seconds);

  /// Adds `delta` (negative: subtracts) to a gauge.
  void gauge_add(gauge g, std::int64_t delta);
  std::int64_t gauge_value(gauge g) const;

  /// Current value of a counter summed over all labels (for tests and CLI).
  std::uint64_t total(counter c) const;
  /// Number of observations of a histogram summed over all labels.
  std::uint64_t count(histogram h) const;

  /// The queues any series was recorded for, sorted (a cluster dispatcher
  /// reports the depth of these).
  std::vector<std::string> queues() const;

  /// Creates, at zero, every series a process of `role` records for `task`
  /// in `queue`, so that a series exists before its first event: an alert
  /// on `increase(trellis_dead_letters_total[5m]) > 0` then fires on the
  /// first dead letter too (Prometheus sees no increase from a series it
  /// has never seen). Called at start for every registered task.
  void declare_task(metrics_role role, const std::string& queue, const std::string& task);
  /// `declare_task` for every task of `tasks`, in each of `queues`, or in
  /// the task's registered queue when `queues` is empty.
  void declare_tasks(metrics_role role, const task_registry& tasks, const std::vector<std::string>& queues = {});

  /// Prometheus text exposition of everything recorded: every family with
  /// `# HELP` and `# TYPE`, also one without series yet
  /// (`to_openmetrics`, prometheus_merge.hpp, turns it into OpenMetrics).
  std::string prometheus_text() const;

 private:
  struct series;
  series& find(std::uint8_t family, const std::string& queue, const std::string& task);
  mutable std::mutex mutex_;
  std::map<std::tuple<std::uint8_t, std::string, std::string>, std::unique_ptr<series>> series_;
  std::array<std::atomic<std::int64_t>, 1> gauges_{};
};

}  // namespace trellis::detail
