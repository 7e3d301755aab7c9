#pragma once

/// @file
/// How a workflow ended: the one record the dispatcher reports after the
/// commit that finished a workflow, the embedded engine hands to a waiting
/// `workflow_handle`, and the cluster client reads from a done notice.

#include "trellis/node_state.hpp"
#include "trellis/value.hpp"

#include <string>

namespace trellis::detail {

/// A finished workflow: its id, its terminal state, and the result (on
/// SUCCESS) or the failed task's error map (on FAILURE or REVOKED).
struct workflow_outcome {
  std::string id;
  node_state state = node_state::pending;
  value result;
  value error;
};

}  // namespace trellis::detail
