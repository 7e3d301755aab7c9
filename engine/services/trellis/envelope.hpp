#pragma once

/// @file
/// The wire contract, version 1: one msgpack map per message, for every
/// message Trellis sends, in-process and over NATS alike. docs/wire-protocol.md
/// is the field table; this header is its code.
///
/// Decoding is strict. Unknown versions, unknown message types, missing
/// fields, fields of the wrong type, unknown fields and payloads over the size
/// limit are each rejected with a specific error (`malformed_envelope`,
/// `unsupported_version`, `payload_too_large`) and the caller dead-letters the
/// bytes with that reason. Decoding never throws and never crashes on any input.

#include "trellis/error.hpp"
#include "trellis/task_progress.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace trellis::detail {

/// The contract version this build writes and reads.
inline constexpr std::int64_t envelope_version = 1;

/// What a message is.
enum class envelope_type : std::uint8_t {
  /// dispatcher -> worker: run attempt `attempt` of node `node`.
  task,
  /// worker -> dispatcher: the outcome of an attempt.
  outcome,
  /// client -> dispatcher: a new workflow (`payload` is the canvas value).
  submit,
  /// worker -> dispatcher: the latest progress and custom state of a running
  /// attempt (`progress`), on the event path outcomes take.
  progress,
  /// worker -> dispatcher: the outcome of an attempt whose handler replaced
  /// itself with a canvas (`payload` is the canvas value), on the event path.
  replace,
};

/// "task", "outcome", "submit", "progress", "replace".
const char* to_string(envelope_type t) noexcept;

/// The result of an attempt, carried by an `outcome` envelope.
enum class outcome_status : std::uint8_t {
  /// `payload` is the result.
  success,
  /// `error_type`/`error_message` say why; the retry policy decides what next.
  failure,
  /// The handler asked to be retried (`ctx.retry_later`); `error_message` is its reason.
  retry,
  /// The task message was poison for the worker (unknown task, bad arguments):
  /// never retried, dead-lettered with `error_type` as the reason.
  rejected,
};

const char* to_string(outcome_status s) noexcept;

/// One message. Fields that a type does not use stay empty and are not encoded.
struct envelope {
  /// Contract version; decode refuses anything but `envelope_version`.
  std::int64_t v = envelope_version;
  envelope_type type = envelope_type::task;
  /// Unique per message; for tasks "<workflow>:<node>:<attempt>", which makes
  /// a re-published task a duplicate the broker can drop (Nats-Msg-Id).
  std::string id;
  std::string workflow_id;
  std::int32_t node = -1;
  std::int32_t attempt = 0;
  /// Task name (task, outcome).
  std::string task;
  /// Queue the task is routed to (task).
  std::string queue;
  value::array args;
  value::map kwargs;
  /// Options the worker needs: "idempotency_key", "time_limit_ms",
  /// "soft_time_limit_ms", "expires_at_ms", "rate_limit" (task);
  /// "submit_key" (submit).
  value::map options;
  /// Task: unused. Outcome: on success the result ("result"); otherwise an
  /// optional detail ("detail"): a retry's countdown in ms (int), or the
  /// original bytes (bin) of a task message the worker could not read.
  /// Submit, replace: the canvas value.
  value payload;
  outcome_status status = outcome_status::success;
  std::string error_type;
  std::string error_message;
  /// W3C trace context ("traceparent"), passed through untouched.
  std::string trace;
  /// Milliseconds since the epoch when the message was created.
  std::int64_t sent_at = 0;
  /// Outcome, replace: handler run time in microseconds.
  std::int64_t duration_us = 0;
  /// Progress: the attempt's latest report ("done", "total", "message",
  /// "state" on the wire, each left out when empty).
  task_progress progress;
};

/// Limits applied while decoding.
struct envelope_limits {
  /// Bytes of one encoded message.
  std::size_t max_bytes = 8 * 1024 * 1024;
  /// Nesting depth of any value inside.
  std::size_t max_depth = 64;
};

/// Encodes `e` as a msgpack map.
std::string encode(const envelope& e);

/// Decodes strictly; see the file comment for the errors.
expected<envelope> decode(std::string_view bytes, const envelope_limits& limits = {});

}  // namespace trellis::detail
