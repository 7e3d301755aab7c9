#pragma once

/// @file
/// A workflow as a graph, for people: the canvas expanded into its nodes
/// (numbered as `trellis status` numbers them), each with its kind, parent,
/// children, task, state, attempts, time of the last change, progress and
/// error. What `GET /api/workflows/ID` answers and the dashboard draws
/// (docs/operations.md "HTTP").
///
/// Leaf states come from the store's node rows (and a running attempt's
/// progress), as in the status document. Composite states are derived the
/// way a restore derives them: the stored canvas is expanded again and fed
/// the stored leaf outcomes, so a chain, group or chord is SUCCESS, FAILURE
/// or REVOKED exactly when the dispatcher decided so; otherwise it is
/// STARTED once any node under it has left PENDING, else PENDING.

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <optional>
#include <string>

namespace trellis::detail {

/// The most nodes a graph document lists; a larger workflow's document
/// holds its first nodes (depth first) and `truncated: true`.
inline constexpr std::size_t max_graph_nodes = 10'000;

/// {id, state, result, error, key, created_at, finished_at, node_count,
/// truncated, nodes: [{id, parent, kind, position, children, replacement,
/// task, queue, state, attempt, updated_at, error, progress, custom_state}],
/// `replacement` naming the root of the canvas a step replaced itself with
/// (or a map over its input expanded into), nil otherwise,
/// failed_attempts}; nullopt when the store does not hold workflow `id`.
/// `limits` bound the stored canvas as the dispatcher reads it. Errors: the
/// store's; `store_corrupt` for a stored canvas that does not parse.
expected<std::optional<value::map>> graph_document(sqlite_store& store, const std::string& id,
                                                   const canvas_limits& limits);

}  // namespace trellis::detail
