#pragma once

/// @file
/// What a process-pool worker and one of its handler children say to each
/// other over their socket (process_pool.hpp): one call in, one reply out.
///
/// A frame is a 4-byte big-endian length, then that many bytes of one
/// msgpack map. The parent trusts nothing a child writes: a child runs user
/// code that may have scribbled over its memory before it crashed or
/// replied. Every length and field is checked on reading, and a frame that
/// fails a check is an error, never a crash or an unbounded allocation; the
/// parent then treats the child as lost (`worker_lost`).

#include "trellis/error.hpp"
#include "trellis/task_progress.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trellis::detail {

/// One handler call: everything the child needs to build the handler's
/// `task_context` (its stop token's deadline from the soft limit).
struct child_request {
  std::string task;
  value::array args;
  value::map kwargs;
  std::string workflow_id;
  std::int32_t node = 0;
  std::int32_t attempt = 1;
  std::string idempotency_key;
  /// The soft time limit: the child's stop token stops by itself this long
  /// after the handler starts, so that a cooperative handler stops in time.
  std::optional<std::int64_t> soft_limit_ms;
  /// The hard time limit, for the child's information only: the parent
  /// enforces it by killing the child.
  std::optional<std::int64_t> hard_limit_ms;
  /// The task message is a chunk (`chunks`): the child calls the handler
  /// once per argument list of `args[0]` (`detail::run_chunk`).
  bool chunk = false;
};

/// What a handler call ended with.
enum class child_reply_kind : std::uint8_t {
  /// `result` holds the handler's result.
  result,
  /// The handler asked for a retry (`ctx.retry_later`): `message` is the
  /// reason, `countdown_ms` the delay it asked for, if any.
  retry,
  /// The handler threw: `error_type` is the `task_error`'s type (empty for
  /// `task_error`), the demangled C++ type name, or "unknown"; `message`
  /// its `what()`.
  failure,
  /// The call was refused without a retry: `error_type` is
  /// "bad_arguments" (a `task_rejected`, arguments that do not bind) or
  /// "payload_too_large" (a result over `max_result_bytes`).
  rejected,
  /// Not an answer yet: the handler's latest progress (`progress`), sent
  /// while it runs; the answer follows. Its custom state name is checked
  /// and its message cut as `task_context` does.
  progress,
  /// The handler replaced itself (`ctx.replace`): `result` holds the
  /// canvas value, which the dispatcher parses strictly.
  replace,
};

/// A child's answer to one `child_request`.
struct child_reply {
  child_reply_kind kind = child_reply_kind::result;
  value result;
  std::string error_type;
  std::string message;
  std::optional<std::int64_t> countdown_ms;
  task_progress progress;
};

/// How one call in a child ended, seen by the worker.
struct child_outcome {
  enum class kind : std::uint8_t {
    /// The child replied: `reply`.
    replied,
    /// The child died or broke the protocol: fail with `worker_lost`.
    lost,
    /// Still running at the hard limit, killed: fail with
    /// `time_limit_exceeded`.
    timed_out,
    /// Killed for a revoke with terminate.
    terminated,
    /// No child could run it (the zygote is gone): hand the task back.
    unavailable,
  };
  kind how = kind::unavailable;
  child_reply reply;
  /// Why, for every kind but `replied`.
  std::string message;
};

/// The bytes of the 4-byte length prefix.
inline constexpr std::size_t frame_header_bytes = 4;

/// `request` as one frame (prefix included).
std::string encode_frame(const child_request& request);
/// `reply` as one frame (prefix included).
std::string encode_frame(const child_reply& reply);

/// The body length a frame header announces. `header` must hold at least
/// `frame_header_bytes`; a length of 0 or over `max_bytes` is
/// `payload_too_large`, a short header `malformed_envelope`.
expected<std::size_t> frame_body_length(std::string_view header, std::size_t max_bytes);

/// A frame body (without its prefix) read back. Errors:
/// `payload_too_large` (over `max_bytes`, nested too deep),
/// `malformed_envelope` (not one msgpack map, a field missing or of the
/// wrong type, an unknown reply kind).
expected<child_request> decode_request(std::string_view body, std::size_t max_bytes);
expected<child_reply> decode_reply(std::string_view body, std::size_t max_bytes);

/// How reading one frame from a socket ended.
enum class frame_status : std::uint8_t {
  /// `body` holds the frame's body.
  complete,
  /// The peer closed the socket before the first byte of a frame.
  closed,
  /// The peer closed it in the middle of a frame, announced a length out
  /// of bounds, or the socket failed: `problem` says which.
  broken,
  /// The deadline passed first.
  timed_out,
  /// `wake_fd` became readable first.
  woken,
};

struct frame_read {
  frame_status status = frame_status::closed;
  std::string body;
  std::string problem;
};

/// Reads one frame from `fd` whose body is at most `max_bytes`, waiting
/// until `deadline` (none: for ever) and ending early, with `woken`, when
/// `wake_fd` (if not -1) becomes readable. The body buffer grows as bytes
/// arrive, never to more than what was received, so a hostile length costs
/// nothing until its bytes come.
frame_read read_frame(int fd, std::size_t max_bytes,
                      std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
                      int wake_fd = -1);

/// Writes all of `frame` to `fd` (MSG_NOSIGNAL: a dead peer is an error,
/// not a SIGPIPE). Errors are `task_failed` and name the failed call.
expected<void> write_frame(int fd, std::string_view frame);

}  // namespace trellis::detail
