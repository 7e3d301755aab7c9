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

/// Whether `from -> to` is a legal transition. Terminal states only move on a
/// replay, which the dispatcher performs explicitly, never through an event.
constexpr bool is_legal_transition(node_state from, node_state to) noexcept {
  if (is_terminal(from)) {
    return false;
  }
  switch (to) {
    case node_state::pending:
      return false;
    case node_state::received:
      return from == node_state::pending || from == node_state::retry;
    case node_state::started:
      return from == node_state::received;
    case node_state::retry:
      return from == node_state::received || from == node_state::started;
    case node_state::success:
    case node_state::failure:
    case node_state::revoked:
      return true;
  }
  return false;
}

}  // namespace trellis
