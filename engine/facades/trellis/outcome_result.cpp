#include "trellis/outcome_result.hpp"

#include <string>

namespace trellis::detail {

expected<value> outcome_result(const workflow_outcome& o) {
  if (o.state == node_state::success) {
    return o.result;
  }
  std::string message = "workflow " + o.id + " " + std::string{to_string(o.state)};
  if (o.error.is_map()) {
    const auto& e = o.error.as_map();
    auto field = [&](const char* k) { return e.count(k) && e.at(k).is_string() ? e.at(k).as_string() : ""; };
    // A whole revoked workflow names no task.
    auto task = field("task");
    message += (task.empty() ? ": " : ": task '" + task + "' failed: ") + field("type") + ": " + field("message");
  }
  return error{o.state == node_state::revoked ? errc::revoked : errc::workflow_failed, message};
}

}  // namespace trellis::detail
