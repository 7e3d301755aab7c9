#pragma once

/// @file
/// Driving a `workflow_graph` by hand in unit tests, as the dispatcher does.

#include "trellis/workflow_graph.hpp"

#include <vector>

namespace trellis::test {

/// Dispatches every leaf `fx` made ready as attempt 1 and returns them.
inline std::vector<detail::node_id> dispatch(detail::workflow_graph& g, const detail::graph_effects& fx) {
  for (auto id : fx.ready) {
    g.mark_dispatched(id, 1);
  }
  return fx.ready;
}

}  // namespace trellis::test
