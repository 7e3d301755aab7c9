#pragma once

/// @file
/// Internal to the NATS transport: messages larger than one NATS message.
///
/// A body larger than the server's max_payload (less room for headers)
/// travels as an upload. Its bytes are stored in pieces in the stream
/// `TRELLIS_<NS>_UPLOADS`, piece n on `trellis.<ns>.upload.<id>.<n>`, and
/// what is sent in its place (a submission request, a task message, an
/// outcome event) is a stub: an empty body with the header
/// `Trellis-Upload: <id> <bytes> <pieces>`. Whoever receives a stub reads
/// the pieces and goes on with the whole body as if it had come in one
/// message. A stub's `Trellis-Signature` covers the whole body, so it is
/// checked on what was read, and a piece someone else wrote makes the
/// signature fail. The pieces are removed once the stub is settled (the
/// submission answered, the task or event acked); the stream's MaxAge
/// removes what a process that died in between left behind.
/// docs/wire-protocol.md "Uploads" is the contract; decision 0016 the why.

#include "trellis/error.hpp"
#include "trellis/transport/nats_handles.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trellis::detail {

class nats_connection;

/// The header that marks a stub and names its upload.
constexpr const char* upload_header = "Trellis-Upload";

/// The three fields of a stub header.
struct upload_ref {
  std::string id;
  std::uint64_t bytes = 0;
  std::uint64_t pieces = 0;
};

/// Parses `<id> <bytes> <pieces>` strictly: single spaces, an id of 1 to 64
/// lowercase hex digits, a size from 1 to `max_upload_bytes()`, a piece
/// count from 1 to the smaller of the size and 1,000,000, plain decimals
/// without sign or leading zero. Anything else is `malformed_envelope`,
/// quoting at most 64 characters of the value.
expected<upload_ref> parse_upload_header(std::string_view header);

/// The stream and the pieces in it. Thread-safe: it keeps no state of its
/// own beyond the connection, and every call is a JetStream request.
class upload_store {
 public:
  explicit upload_store(nats_connection& conn) : conn_(conn) {}
  upload_store(const upload_store&) = delete;
  upload_store& operator=(const upload_store&) = delete;

  /// Declares `TRELLIS_<NS>_UPLOADS` (limits retention, MaxAge a week,
  /// deduplication by piece, the configured storage and replicas).
  expected<void> declare_stream();

  /// Whether a body of `bytes` must travel as an upload.
  bool too_large(std::size_t bytes) const;

  /// Stores `body` in pieces under a new id and returns the stub's header
  /// value. Errors: broker_unavailable (and what JetStream answers, e.g.
  /// when no dispatcher of this version declared the stream yet).
  expected<std::string> put(std::string_view body);

  /// The whole body of the stub `m`; nothing when `m` is not a stub. Errors:
  /// `malformed_envelope` for a header that does not parse or pieces that
  /// do not add up to it, `payload_too_large` for more than
  /// `max_upload_bytes`, `broker_unavailable` when a piece cannot be read
  /// (the broker is away, or the pieces are gone: expired or removed).
  std::optional<expected<std::string>> body_of(natsMsg* m) const;

  /// Removes the pieces of the upload the stub header `header` names;
  /// nothing for a value that does not parse. Best effort: a failure is
  /// remembered, and MaxAge removes them later.
  void remove(const std::string& header);

  /// The stub header of `m`, or nothing when `m` is not a stub.
  static std::optional<std::string> header_of(natsMsg* m);

 private:
  nats_connection& conn_;
};

/// The largest body an upload may carry: the largest size limit a process
/// may be configured to (defaults::max_configurable_bytes) and room for an
/// envelope around it twice (an outcome that carries a task back).
std::size_t max_upload_bytes();

}  // namespace trellis::detail
