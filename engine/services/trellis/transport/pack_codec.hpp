#pragma once

// Packs: several envelopes framed into one JetStream message.
//
// Every JetStream message costs the broker a store, a PubAck, a delivery and
// an ack, so the NATS transport packs the events of one call, and the tasks
// of a large call, into fewer messages. A pack's body is a run of frames,
// each a 4-byte little-endian length followed by that many bytes; a header
// (`Trellis-Event-Pack` or `Trellis-Task-Pack`) carries the frame count.
//
// Both the header and the body come from the wire, so reading them is a
// message boundary: every count and length is checked against the bytes
// actually received before anything is allocated, and a pack that does not
// parse is an error for the receiver to dead-letter, never an exception.

#include "trellis/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// Bytes of the length prefix in front of each framed envelope.
inline constexpr std::size_t pack_frame_header = 4;

/// Frames `bytes_of(first) .. bytes_of(last - 1)` as length-prefixed bytes.
/// Each envelope must be under 4 GiB (the transport's payload limit is far
/// below that).
template <class BytesOf>
std::string pack_frames(std::size_t first, std::size_t last, BytesOf bytes_of) {
  std::size_t total = 0;
  for (auto i = first; i < last; ++i) {
    total += pack_frame_header + bytes_of(i).size();
  }
  std::string out;
  out.reserve(total);
  for (auto i = first; i < last; ++i) {
    const std::string& bytes = bytes_of(i);
    auto n = static_cast<std::uint32_t>(bytes.size());
    char len[pack_frame_header] = {static_cast<char>(n & 0xFF), static_cast<char>((n >> 8) & 0xFF),
                                   static_cast<char>((n >> 16) & 0xFF), static_cast<char>((n >> 24) & 0xFF)};
    out.append(len, pack_frame_header);
    out.append(bytes);
  }
  return out;
}

/// The frame count a pack header announces for a body of `body_size` bytes.
/// Only plain decimal digits are accepted, and the count must be between 1
/// and the number of empty frames the body could hold (`body_size / 4`):
/// a count the bytes cannot back is `malformed_envelope`, so that a forged
/// header can never size an allocation.
expected<std::size_t> parse_pack_count(std::string_view header, std::size_t body_size);

/// The `count` envelopes framed in `body`: `malformed_envelope` unless the
/// body is exactly `count` whole frames.
expected<std::vector<std::string>> unpack_frames(std::string_view body, std::size_t count);

}  // namespace trellis::detail
