#pragma once

/// @file
/// Message signing for cluster mode: an HMAC-SHA256 over a message's whole
/// body, with a key shared by every process of a cluster and read from a
/// file. The signature travels beside the body (the NATS header
/// `Trellis-Signature`), so the versioned envelope stays unchanged; see
/// docs/decisions/0010-message-signing.md.
///
/// The key is never printed: not by errors, not by `describe()`.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "trellis/error.hpp"

// OpenSSL's keyed HMAC state; only signing.cpp sees inside it.
struct evp_mac_ctx_st;

namespace trellis::detail {

/// The NATS message header that carries a signature.
inline constexpr const char* signature_header = "Trellis-Signature";

/// The shortest key accepted, in bytes: HMAC-SHA256's own output size. A
/// shorter key would be the weakest part of the scheme.
inline constexpr std::size_t min_signing_key_bytes = 32;

/// Signs and checks message bodies with one HMAC-SHA256 key. Immutable, so
/// one signer is shared by every thread of a process; copies share the key.
class message_signer {
 public:
  /// The key is the file's bytes without trailing whitespace (so that
  /// `openssl rand -hex 32 > key` works as is). Errors (`invalid_config`)
  /// name the setting and the path, never the content: the file cannot be
  /// read, or the key is shorter than `min_signing_key_bytes`.
  static expected<message_signer> from_file(const std::string& path);

  /// A signer with `key` as it is. Throws `setup_error` (invalid_config)
  /// for a key shorter than `min_signing_key_bytes`.
  explicit message_signer(std::string key);

  /// The signature of `body`: "sha256=" and 64 lower-case hex digits. On
  /// the hot path (every published message), so it throws nothing: when
  /// OpenSSL cannot compute the HMAC (out of memory), `broker_unavailable`,
  /// which publishers treat as a failed publish (retried, nothing lost).
  expected<std::string> sign(std::string_view body) const;

  /// Checks `signature` (the header's value; null when the header is
  /// absent) against `body`, in constant time. Errors: `unsigned_message`
  /// when there is no signature, `bad_signature` when it does not match
  /// (wrong key, altered body, or not of the form `sign` produces).
  expected<void> verify(std::string_view body, const char* signature) const;

 private:
  /// HMAC-SHA256 already keyed: each message duplicates it instead of
  /// setting up the algorithm and the key again (3 us -> 1 us a message).
  /// Read-only after construction. The key itself is not kept elsewhere.
  std::shared_ptr<const evp_mac_ctx_st> keyed_;
};

}  // namespace trellis::detail
