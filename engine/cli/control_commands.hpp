#pragma once

/// @file
/// Internal to the command line: the commands that ask running cluster
/// processes over NATS (`--broker`) instead of opening a store file
/// (docs/cli.md "Cluster commands", docs/cluster.md "Control"). Each prints
/// what its `--db` form prints and returns the same exit codes, plus 4 when
/// the broker or the dispatcher cannot be reached.

#include "trellis/cluster_node.hpp"
#include "trellis/engine.hpp"
#include "trellis/error.hpp"
#include "trellis/transport/cluster_bus.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace trellis::cli {

/// Connects a client (no consumers) to the broker of `opts`.
expected<std::shared_ptr<detail::cluster_bus>> connect_client(const detail::cluster_options& opts,
                                                              const std::string& client_name);

/// `status ID --broker URL`: asks the dispatcher owning the workflow's
/// partition (`partition_of(id, opts.partitions)`) and prints the status line.
int status_over_broker(const std::string& id, const detail::cluster_options& opts);

/// `dlq list --broker URL`: the dead letters of the dispatcher of `partition`.
int dlq_list_over_broker(int partition, const detail::cluster_options& opts);

/// `dlq replay LETTER --broker URL`: the dispatcher of `partition` replays the
/// letter; then waits for the workflow's outcome and prints the outcome line.
int dlq_replay_over_broker(std::int64_t letter, int partition, const detail::cluster_options& opts);

/// `inspect --broker URL`: one JSON line per process that answers within
/// `window`, workers first, then dispatchers, each sorted by name.
int inspect_over_broker(const detail::cluster_options& opts, std::chrono::milliseconds window);

/// `metrics --broker URL`: the metrics of every process that answers within
/// `window`, as one Prometheus text exposition: each sample labelled
/// `process="<name>"` (the name `inspect` shows), each family declared once.
/// An answer that cannot be read is left out with a warning on stderr.
int metrics_over_broker(const detail::cluster_options& opts, std::chrono::milliseconds window,
                        metrics_format format);

/// `revoke ID [--node N] [--terminate] --broker URL`: the owning dispatcher
/// revokes the workflow (or node); prints `revoke_line` of its answer.
int revoke_over_broker(const std::string& id, const revoke_options& what, const detail::cluster_options& opts);

/// Waits for one workflow's outcome over the broker without missing it. The
/// `done` notice is core NATS, so it can be lost (a client away while it was
/// published); the waiter therefore also asks the owning dispatcher for the
/// workflow's status at once, after every reconnect and every `poll`, and a
/// lost notice only delays the answer.
class outcome_waiter {
 public:
  /// Subscribes to the done notice of `workflow_id` and to reconnects of
  /// `bus`. Subscribe before the workflow can finish when you can (submit);
  /// the status requests cover the other cases (replay).
  static expected<outcome_waiter> watch(detail::cluster_bus& bus, const std::string& workflow_id,
                                        const detail::cluster_options& opts);

  /// Blocks until the outcome is known (no deadline, as `run`), prints the
  /// outcome line and returns its exit code (0 SUCCESS, 1 otherwise).
  int report(detail::cluster_bus& bus);

  /// Period of the status requests.
  static constexpr std::chrono::seconds poll{3};

 private:
  struct shared {
    std::mutex mutex;
    std::condition_variable changed;
    std::optional<std::string> notice;
    bool ask = true;  // ask the dispatcher now (at start and after a reconnect)
  };
  outcome_waiter(std::shared_ptr<shared> s, std::string id, int partition);

  std::shared_ptr<shared> state_;
  std::string id_;
  int partition_;
};

}  // namespace trellis::cli
