#pragma once

/// @file
/// The client side of cluster mode, as `trellis submit` uses it: submit a
/// workflow to the dispatcher over NATS (core request/reply, answered after
/// the dispatcher's commit) and hear when it finished, on
/// `trellis.<ns>.done.<id>` (docs/cluster.md). The benchmark in bench/
/// drives a cluster through this same code.

#include "trellis/canvas.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/error.hpp"
#include "trellis/node_state.hpp"
#include "trellis/submission.hpp"
#include "trellis/value.hpp"
#include "trellis/workflow_outcome.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace trellis::detail {

class cluster_bus;

/// One NATS connection that submits workflows and waits for their outcomes.
/// Thread-safe: several threads may submit and wait at once.
class cluster_client {
 public:
  /// Connects to `opts.broker_urls` in namespace `opts.ns`, with its
  /// credentials, TLS and signing key, and submits to the partition of each
  /// workflow among `opts.partitions` (the other fields are ignored). Errors: `invalid_config`, `broker_unavailable`.
  static expected<std::unique_ptr<cluster_client>> connect(const cluster_options& opts,
                                                           const std::string& client_name = "trellis-submit");

  ~cluster_client();
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  /// Submits `flow` under a new random workflow id and returns that id once
  /// the dispatcher committed the workflow. With `watch`, it first
  /// subscribes to the workflow's completion notice (so the notice cannot be
  /// missed), which `wait` then returns. While no dispatcher listens the
  /// request is repeated until `timeout`. Errors: `broker_unavailable` and
  /// `timeout` (as cluster_bus::request_submission), `invalid_workflow`
  /// when the dispatcher refused it (the message says why),
  /// `malformed_envelope` for an answer that cannot be read.
  expected<std::string> submit(const canvas& flow, bool watch,
                               std::chrono::milliseconds timeout = std::chrono::seconds{30});

  /// As `submit`, under the caller's `workflow_id` (a new one, from
  /// `new_workflow_id`): a caller that knows the id before the request goes
  /// out can subscribe to what it needs first, as `trellis::client` does.
  /// An id the dispatcher already knows is answered with that id and
  /// submits nothing (the dispatcher deduplicates by workflow id). With
  /// `submit_key`, the envelope carries it and a key the dispatcher already
  /// knows is answered with its workflow's id (the first submission wins):
  /// the returned id is then not `workflow_id`.
  expected<std::string> submit_as(const std::string& workflow_id, const canvas& flow, bool watch,
                                  std::chrono::milliseconds timeout = std::chrono::seconds{30},
                                  const std::optional<std::string>& submit_key = std::nullopt);

  /// Sends a control request (docs/cluster.md "Control") to the dispatcher
  /// of `partition` and returns the body of its answer. While no dispatcher
  /// listens on the partition the request is repeated until `timeout`.
  /// Errors: `broker_unavailable`, `timeout`, the dispatcher's own error
  /// (`not_found`, `invalid_workflow`, ...), `malformed_envelope`.
  expected<value> ask(const control_request& request, int partition, std::chrono::milliseconds timeout);

  /// The partition count the client routes by (`partition_of`).
  int partitions() const noexcept { return partitions_; }

  /// Waits up to `timeout` for the completion notice of a workflow submitted
  /// with `watch`, and forgets it. Errors: `timeout` (the workflow goes on),
  /// `not_found` (not watched, or already waited for),
  /// `malformed_envelope` for a notice that cannot be read.
  expected<workflow_outcome> wait(const std::string& id, std::chrono::milliseconds timeout);

  /// The connection's cluster bus, for callers that need more (e.g. queue
  /// depth).
  cluster_bus& bus() noexcept { return *bus_; }

 private:
  cluster_client(std::shared_ptr<cluster_bus> bus, int partitions, canvas_limits limits);

  int partitions_;
  canvas_limits limits_;

  // Declared before the bus, whose destructor waits for the callbacks that
  // use them.
  std::mutex mutex_;
  std::condition_variable done_cv_;
  /// Watched workflows, by id: their notice once it arrived.
  std::map<std::string, std::optional<std::string>> watched_;
  std::shared_ptr<cluster_bus> bus_;
};

}  // namespace trellis::detail
