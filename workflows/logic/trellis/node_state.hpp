#pragma once

/// @file
/// The states of a task invocation (a node) and of a workflow, with Celery's
/// names, and the legal transitions between them.

#include <cstdint>
#include <optional>
#include <string_view>

namespace trellis {

/// State of a node or a workflow. The CLI and docs print them in upper case.
enum class node_state : std::uint8_t {
  /// Not yet ready: waiting for the steps before it.
  pending = 0,
  /// Ready; its task message is published (or due to be) and waits for a worker.
  received = 1,
  /// A worker is running an attempt.
  started = 2,
  /// Finished with a result. Terminal.
  success = 3,
  /// Finished with an error. Terminal.
  failure = 4,
  /// An attempt failed and a new attempt is scheduled at a due time.
  retry = 5,
  /// Revoked before it finished. Terminal.
  revoked = 6,
};

/// "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED".
std::string_view to_string(node_state s) noexcept;

/// Parses the upper-case name.
std::optional<node_state> node_state_from_string(std::string_view name) noexcept;

/// Whether no further transition is allowed (except an explicit dead-letter replay).
constexpr bool is_terminal(node_state s) noexcept {
  return s == node_state::success || s == node_state::failure || s == node_state::revoked;
}

}  // namespace trellis
