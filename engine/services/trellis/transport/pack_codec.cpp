#include "trellis/transport/pack_codec.hpp"

#include <limits>

namespace trellis::detail {

namespace {

/// Header values are echoed into dead-letter reasons; a forged one may be
/// long, so only its start is quoted.
constexpr std::size_t max_quoted_header = 32;

std::string quoted(std::string_view header) {
  if (header.size() <= max_quoted_header) {
    return "'" + std::string{header} + "'";
  }
  return "'" + std::string{header.substr(0, max_quoted_header)} + "...' (" + std::to_string(header.size()) +
         " characters)";
}

}  // namespace

expected<std::size_t> parse_pack_count(std::string_view header, std::size_t body_size) {
  const auto most = body_size / pack_frame_header;
  std::size_t count = 0;
  bool over = header.empty();
  for (char c : header) {
    if (c < '0' || c > '9') {
      return error{errc::malformed_envelope, "pack header " + quoted(header) + " is not a decimal frame count"};
    }
    auto digit = static_cast<std::size_t>(c - '0');
    if (count > (std::numeric_limits<std::size_t>::max() - digit) / 10) {
      over = true;
      break;
    }
    count = count * 10 + digit;
  }
  if (over || count == 0 || count > most) {
    return error{errc::malformed_envelope, "pack header " + quoted(header) + " announces a frame count outside 1.." +
                                               std::to_string(most) + " for a body of " + std::to_string(body_size) +
                                               " bytes"};
  }
  return count;
}

expected<std::vector<std::string>> unpack_frames(std::string_view body, std::size_t count) {
  if (count > body.size() / pack_frame_header) {
    return error{errc::malformed_envelope, "a pack of " + std::to_string(body.size()) + " bytes cannot hold " +
                                               std::to_string(count) + " frames"};
  }
  std::vector<std::string> out;
  out.reserve(count);
  std::size_t at = 0;
  while (at < body.size()) {
    if (body.size() - at < pack_frame_header || out.size() == count) {
      break;
    }
    auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(body[at + k])); };
    std::size_t n = byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24);
    at += pack_frame_header;
    if (body.size() - at < n) {
      return error{errc::malformed_envelope, "frame " + std::to_string(out.size() + 1) + " of a pack claims " +
                                                 std::to_string(n) + " bytes where " +
                                                 std::to_string(body.size() - at) + " remain"};
    }
    out.emplace_back(body.substr(at, n));
    at += n;
  }
  if (at != body.size() || out.size() != count) {
    return error{errc::malformed_envelope, "a pack announced " + std::to_string(count) + " frames but its " +
                                               std::to_string(body.size()) + " bytes are " +
                                               std::to_string(out.size()) + " whole frames" +
                                               (at != body.size() ? " and a remainder" : "")};
  }
  return out;
}

}  // namespace trellis::detail
