#pragma once

/// @file
/// What an HTTP endpoint serves, whoever answers it: an embedded engine,
/// a cluster worker or dispatcher, or `trellis dashboard` for a whole
/// namespace. Each is a function a facade provides; one left empty is
/// answered with 404 (a worker holds no workflows, say). Every function
/// is called from HTTP threads, several at once, and must be thread-safe.

#include "trellis/error.hpp"
#include "trellis/metrics_format.hpp"
#include "trellis/node_state.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace trellis::detail {

class event_hub;

/// `GET /api/workflows?state=&limit=&cursor=`.
struct workflow_list_query {
  std::optional<node_state> state;
  std::size_t limit = 50;
  std::string cursor;
};

/// `POST /api/workflows/ID/revoke`.
struct revoke_query {
  std::string workflow_id;
  std::optional<std::int32_t> node;
  bool terminate = false;
};

struct operator_api {
  /// The process's metrics (the namespace's, for the dashboard).
  std::function<std::string(metrics_format)> metrics;
  /// {ready: bool, checks: {name: {ok: bool, detail: string}}}: connected,
  /// store open, partitions owned, as far as the process has them.
  std::function<value()> readiness;
  /// {workflows: [list lines], next: cursor or nil}.
  std::function<expected<value>(const workflow_list_query&)> workflows;
  /// The graph document (graph_document.hpp).
  std::function<expected<value>(const std::string&)> workflow;
  /// [{queue, depth, published, succeeded, failed, retried, dead_letters, workers}].
  std::function<expected<value>()> queues;
  /// [{name, role, queues, tasks, concurrency, active, ...}]: the inspect answers.
  std::function<expected<value>()> workers;
  /// [dead letter rows, each with its `partition`].
  std::function<expected<value>()> dead_letters;
  /// Submits a workflow given as a workflow file's JSON (docs/cli.md
  /// "Workflow files"), with an optional submission key; {id}.
  std::function<expected<value>(const value& workflow, const std::optional<std::string>& key)> submit;
  /// The revoke answer (engine::revoke).
  std::function<expected<value>(const revoke_query&)> revoke;
  /// Replays dead letter `letter` of `partition`; {id} of the reopened workflow.
  std::function<expected<value>(std::int64_t letter, int partition)> replay;
  /// The periodic schedules (`trellis schedule list`'s lines); empty: none
  /// here (a cluster's schedules are not built yet).
  std::function<expected<value>()> schedules;
  /// Task events for `GET /api/events`; null: no stream.
  std::shared_ptr<event_hub> events;
};

}  // namespace trellis::detail
