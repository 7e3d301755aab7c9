#pragma once

/// @file
/// Internal to the NATS transport: what Trellis writes on a NATS message
/// besides its body, and reads back. Two headers: `Trellis-Signature`
/// (trellis/signing.hpp), and the pack headers that say a message holds
/// several envelopes (pack_codec.hpp, docs/wire-protocol.md "Packs").
/// Stateless functions, safe from any thread.

#include "trellis/error.hpp"
#include "trellis/transport/nats_handles.hpp"

#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

class message_signer;

/// The headers that mark a message as a pack of events or of tasks and count
/// them (see "Packs" in nats_publishing.cpp).
constexpr const char* event_pack_header = "Trellis-Event-Pack";
constexpr const char* task_pack_header = "Trellis-Task-Pack";

/// A natsMsg on `subject` carrying `body`, or with `upload` (a stub header,
/// nats_uploads.hpp) an empty body and that header; signed over `body` when
/// `signer` is set. `out` holds the message, also on failure.
natsStatus make_message(message_ptr& out, const std::string& subject, const std::string& body,
                        const message_signer* signer, const std::string* upload = nullptr);

/// js_PublishAsync of `body`, with headers when there are any: its signature
/// (Trellis-Signature) when `signer` is set, the number of envelopes of a
/// pack (header `pack_header`, see pack_frames) when `pack_count` is set,
/// and with `upload` (a stub header, nats_uploads.hpp) as a stub: an empty
/// body and the header, signed over `body`. Signed, packed or stub messages
/// go out as a natsMsg; others keep the plain path.
natsStatus publish_one_async(jsCtx* js, const std::string& subject, const std::string& body,
                             const message_signer* signer, const char* pack_header, const std::string* pack_count,
                             jsPubOptions* po, const std::string* upload = nullptr);

/// Why a received message must not be used (no signature, a wrong one), or
/// nothing: always nothing without a signer. The signature is checked
/// against `body` when given (the whole body of a stub), else against the
/// message's own.
std::optional<error> refusal_of(const message_signer* signer, natsMsg* m, const std::string* body = nullptr);

/// The envelopes of `m` when it is a pack (it carries either pack header),
/// an error when its header or frames do not parse (pack_codec.hpp), nothing
/// when it is not a pack.
std::optional<expected<std::vector<std::string>>> unpack_message(natsMsg* m);

}  // namespace trellis::detail
