#pragma once

/// @file
/// Task events: the lifecycle of workflows and their tasks as a stream a
/// monitor can follow (docs/wire-protocol.md "Task events"). The dispatcher
/// announces what it committed (submitted, retried, succeeded, failed,
/// dead-lettered, revoked), a worker announces each task it starts.
///
/// They are notices, not state: published after the commit, on core NATS in
/// cluster mode (`trellis.<ns>.events`, never stored) and to the process's
/// HTTP server-sent events in both modes. A monitor that misses some (it was
/// not connected, or too slow) reads the state with `status`.
///
/// On the wire a batch is a msgpack map {v: 1, events: [event, ...]}, each
/// event a map {kind, workflow, node, task, attempt, at, error}: `node` and
/// `task` nil for an event of the whole workflow, `error` ({type, message})
/// nil unless the kind carries one. Decoding is strict, as for envelopes.

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// The task event contract version this build speaks.
inline constexpr std::int64_t lifecycle_version = 1;

/// The largest event batch this build reads.
inline constexpr std::size_t max_lifecycle_batch_bytes = 8 * 1024 * 1024;

/// The most events one batch holds.
inline constexpr std::size_t max_lifecycle_batch_events = 100'000;

enum class lifecycle_kind : std::uint8_t {
  /// A workflow was committed (workflow event).
  submitted,
  /// A worker started an attempt of a task.
  started,
  /// An attempt failed and another is scheduled (`error` says why).
  retried,
  /// A task succeeded; without a node: the workflow did.
  succeeded,
  /// A task failed for good; without a node: the workflow did (`error`).
  failed,
  /// A message went to the dead-letter store (`error`: reason and text).
  dead_lettered,
  /// A task was revoked; without a node: the workflow was.
  revoked,
};

/// "submitted", "started", "retried", "succeeded", "failed",
/// "dead_lettered", "revoked".
const char* to_string(lifecycle_kind k) noexcept;

struct lifecycle_event {
  lifecycle_kind kind = lifecycle_kind::submitted;
  std::string workflow;
  /// The task node; unset for an event of the whole workflow.
  std::optional<std::int32_t> node;
  /// The task's name (empty for a workflow event).
  std::string task;
  /// The attempt (0 for a workflow event).
  std::int32_t attempt = 0;
  /// When it happened, epoch milliseconds.
  std::int64_t at = 0;
  /// {type, message} for retried, failed and dead_lettered; nil otherwise.
  value error;
};

/// The event as the map described in the file comment.
value to_value(const lifecycle_event& e);

/// A batch as msgpack.
std::string encode_lifecycle_batch(const std::vector<lifecycle_event>& events);

/// Reads a batch strictly: `unsupported_version`, `payload_too_large`, or
/// `malformed_envelope` naming the first thing wrong. Never throws.
expected<std::vector<lifecycle_event>> decode_lifecycle_batch(std::string_view bytes);

}  // namespace trellis::detail
