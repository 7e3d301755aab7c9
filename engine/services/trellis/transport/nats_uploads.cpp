#include "trellis/transport/nats_uploads.hpp"

#include "trellis/defaults.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/nats_connection.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <vector>

namespace trellis::detail {

namespace {

// How long the uploads stream keeps a piece nobody removed: a submitter or
// a worker that died between sending a stub and settling it. A task stub
// can wait in its queue for a long time (no worker for it), so long enough
// for any outage worth waiting out, as the lost stream's advisories.
constexpr std::chrono::hours upload_max_age{24 * 7};

// Most pieces a stub may name: 900 MiB in pieces of 1 KiB, far more than a
// server with a sane max_payload needs, and a bound on the requests one
// stub can cause.
constexpr std::uint64_t max_pieces = 1'000'000;

/// A decimal without sign or leading zero, at most `max`.
std::optional<std::uint64_t> number_in(std::string_view text, std::uint64_t max) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size() || n > max) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

expected<upload_ref> parse_upload_header(std::string_view header) {
  auto bad = [&](const char* why) {
    return error{errc::malformed_envelope, std::string{"unreadable "} + upload_header + " header (" + why + "): '" +
                                               std::string{header.substr(0, 64)} + (header.size() > 64 ? "...'" : "'")};
  };
  auto first = header.find(' ');
  auto second = first == std::string_view::npos ? first : header.find(' ', first + 1);
  if (second == std::string_view::npos || header.find(' ', second + 1) != std::string_view::npos) {
    return bad("expected '<id> <bytes> <pieces>'");
  }
  upload_ref ref;
  ref.id = std::string{header.substr(0, first)};
  if (ref.id.empty() || ref.id.size() > 64 || ref.id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return bad("the id must be 1 to 64 lowercase hex digits");
  }
  auto bytes = number_in(header.substr(first + 1, second - first - 1), max_upload_bytes());
  if (!bytes || *bytes == 0) {
    return bad("the size must be from 1 to the largest upload");
  }
  auto pieces = number_in(header.substr(second + 1), std::min(*bytes, max_pieces));
  if (!pieces || *pieces == 0) {
    return bad("the piece count must be from 1 to the size");
  }
  ref.bytes = *bytes;
  ref.pieces = *pieces;
  return ref;
}

std::size_t max_upload_bytes() { return defaults::max_configurable_bytes + 2 * defaults::envelope_room; }

expected<void> upload_store::declare_stream() {
  auto name = conn_.names().upload_stream();
  auto subject = conn_.names().all_uploads();
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig sc;
  conn_.init_stream(sc, name, subjects, js_LimitsPolicy);
  sc.MaxAge = static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(upload_max_age).count());
  // A piece published again (a retried put) is stored once.
  sc.Duplicates =
      static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(conn_.cfg().dedup_window).count());
  // One message per subject: a piece is never overwritten by another.
  sc.MaxMsgsPerSubject = 1;
  return conn_.add_or_update_stream(sc, name, subject);
}

bool upload_store::too_large(std::size_t bytes) const { return bytes > conn_.max_message_bytes(); }

expected<std::string> upload_store::put(std::string_view body) {
  if (body.empty() || body.size() > max_upload_bytes()) {
    return error{errc::payload_too_large, "a message of " + std::to_string(body.size()) +
                                              " bytes is beyond the largest upload (" +
                                              std::to_string(max_upload_bytes()) + " bytes)"};
  }
  auto piece_bytes = std::max<std::size_t>(1, conn_.max_message_bytes());
  auto id = new_workflow_id();
  auto pieces = (body.size() + piece_bytes - 1) / piece_bytes;
  auto stream = conn_.names().upload_stream();
  for (std::size_t n = 0; n < pieces; ++n) {
    auto subject = conn_.names().upload_piece(id, n);
    if (!subject) {
      return subject.error();
    }
    auto piece = body.substr(n * piece_bytes, piece_bytes);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    auto msg_id = id + "." + std::to_string(n);
    po.MsgId = msg_id.c_str();
    po.ExpectStream = stream.c_str();
    po.MaxWait = conn_.cfg().api_timeout.count();
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s =
        js_Publish(nullptr, conn_.js(), subject->c_str(), piece.data(), static_cast<int>(piece.size()), &po, &jerr);
    if (s != NATS_OK) {
      remove(id + " " + std::to_string(body.size()) + " " + std::to_string(pieces));
      return conn_.api_error("cannot store piece " + std::to_string(n) + " of " + std::to_string(pieces) + " of a " +
                                 std::to_string(body.size()) + "-byte message in " + stream +
                                 " (is a dispatcher of this version running? it declares the stream)",
                             s, jerr);
    }
  }
  return id + " " + std::to_string(body.size()) + " " + std::to_string(pieces);
}

std::optional<std::string> upload_store::header_of(natsMsg* m) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(m, upload_header, &value) != NATS_OK || value == nullptr) {
    return std::nullopt;
  }
  return std::string{value};
}

std::optional<expected<std::string>> upload_store::body_of(natsMsg* m) const {
  auto header = header_of(m);
  if (!header) {
    return std::nullopt;
  }
  auto ref = parse_upload_header(*header);
  if (!ref) {
    return expected<std::string>{ref.error()};
  }
  if (natsMsg_GetDataLength(m) != 0) {
    return expected<std::string>{
        error{errc::malformed_envelope, std::string{"a message with an "} + upload_header + " header has a body"}};
  }
  std::string body;
  body.reserve(static_cast<std::size_t>(ref->bytes));
  auto stream = conn_.names().upload_stream();
  auto jo = conn_.api_options();
  for (std::uint64_t n = 0; n < ref->pieces; ++n) {
    auto subject = conn_.names().upload_piece(ref->id, n);
    if (!subject) {
      return expected<std::string>{subject.error()};
    }
    natsMsg* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_GetLastMsg(&raw, conn_.js(), stream.c_str(), subject->c_str(), &jo, &jerr);
    message_ptr piece{raw};
    if (s != NATS_OK) {
      return expected<std::string>{conn_.broker_error("cannot read piece " + std::to_string(n) + " of " +
                                                          std::to_string(ref->pieces) + " of upload " + ref->id +
                                                          " from " + stream + " (removed, or expired)",
                                                      s, jerr)};
    }
    auto size = static_cast<std::size_t>(natsMsg_GetDataLength(piece.get()));
    if (size == 0 || body.size() + size > ref->bytes) {
      return expected<std::string>{error{errc::malformed_envelope, "the pieces of upload " + ref->id +
                                                                       " do not add up to the " +
                                                                       std::to_string(ref->bytes) + " bytes it names"}};
    }
    body.append(natsMsg_GetData(piece.get()), size);
  }
  if (body.size() != ref->bytes) {
    return expected<std::string>{error{errc::malformed_envelope, "the pieces of upload " + ref->id + " hold " +
                                                                     std::to_string(body.size()) + " bytes, not the " +
                                                                     std::to_string(ref->bytes) + " it names"}};
  }
  return expected<std::string>{std::move(body)};
}

void upload_store::remove(const std::string& header) {
  auto ref = parse_upload_header(header);
  if (!ref) {
    return;
  }
  auto pieces = conn_.names().upload_pieces(ref->id);
  if (!pieces) {
    return;
  }
  auto stream = conn_.names().upload_stream();
  auto jo = conn_.api_options();
  jo.Stream.Purge.Subject = pieces->c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto s = js_PurgeStream(conn_.js(), stream.c_str(), &jo, &jerr); s != NATS_OK) {
    conn_.remember(conn_.api_error(
        "cannot remove the pieces of upload " + ref->id + " from " + stream + " (they expire within a week)", s, jerr));
  }
}

}  // namespace trellis::detail
