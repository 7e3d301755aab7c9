#pragma once

/// @file
/// Internal to the command line: the commands that ask running cluster
/// processes over NATS (`--broker`) instead of opening a store file
/// (docs/cli.md "Cluster commands", docs/cluster.md "Control"). Each prints
/// what its `--db` form prints and returns the same exit codes, plus 4 when
/// the broker or the dispatcher cannot be reached.

#include "trellis/client.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/engine.hpp"
#include "trellis/error.hpp"
#include "trellis/transport/cluster_bus.hpp"

#include "table_output.hpp"
#include "waiting.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace trellis::cli {

/// Connects a bus client (no consumers) to the broker of `opts`, for the
/// commands that ask every process (`inspect`, `metrics`).
expected<std::shared_ptr<detail::cluster_bus>> connect_client(const detail::cluster_options& opts,
                                                              const std::string& client_name);

/// Connects a `trellis::client` with the command's settings: what `submit`,
/// `status`, `revoke` and `dlq` use.
expected<std::unique_ptr<client>> connect_trellis_client(const detail::cluster_options& opts,
                                                         const std::string& client_name);

/// Waits for the workflow of `handle` within `limit` (no deadline without
/// --timeout-ms, as `run`), redrawing `progress` about once a second and
/// running `slow` once if the wait lasts (when given), prints its
/// outcome line and returns its exit code: 0 SUCCESS, 1 FAILURE or REVOKED,
/// 4 for a notice or status that cannot be read, 6 when `limit` ran out. A
/// lost done notice only delays the answer (client_handle asks the dispatcher).
int report_outcome(const client_handle& handle, wait_limit& limit, progress_line* progress = nullptr,
                   const slow_wait_check* slow = nullptr);

/// `report_outcome` without a limit.
inline int report_outcome(const client_handle& handle) {
  wait_limit none;
  return report_outcome(handle, none);
}

/// `status ID --broker URL`: asks the dispatcher owning the workflow's
/// partition (`partition_of(id, opts.partitions)`) and prints the status
/// line (or, with `-o table`, `status_table`).
int status_over_broker(const std::string& id, const detail::cluster_options& opts,
                       output_format format = output_format::json);

/// `dlq list --broker URL`: the dead letters of the dispatcher of `partition`
/// (JSON lines, or `dead_letter_table`).
int dlq_list_over_broker(int partition, const detail::cluster_options& opts,
                         output_format format = output_format::json);

/// `dlq replay LETTER --broker URL`: the dispatcher of `partition` replays the
/// letter; then waits for the workflow's outcome (at most `timeout_ms`) and
/// prints the outcome line.
int dlq_replay_over_broker(std::int64_t letter, int partition, const detail::cluster_options& opts,
                           std::optional<std::int64_t> timeout_ms);

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

}  // namespace trellis::cli
