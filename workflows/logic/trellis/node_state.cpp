#include "trellis/node_state.hpp"

namespace trellis {

std::string_view to_string(node_state s) noexcept {
  switch (s) {
    case node_state::pending:
      return "PENDING";
    case node_state::received:
      return "RECEIVED";
    case node_state::started:
      return "STARTED";
    case node_state::success:
      return "SUCCESS";
    case node_state::failure:
      return "FAILURE";
    case node_state::retry:
      return "RETRY";
    case node_state::revoked:
      return "REVOKED";
  }
  // Only reachable through a cast from a number that is not a state (a damaged
  // store row); say so rather than print an empty name.
  return "UNKNOWN";
}

std::optional<node_state> node_state_from_string(std::string_view name) noexcept {
  for (auto s : {node_state::pending, node_state::received, node_state::started, node_state::success,
                 node_state::failure, node_state::retry, node_state::revoked}) {
    if (to_string(s) == name) {
      return s;
    }
  }
  return std::nullopt;
}

}  // namespace trellis
