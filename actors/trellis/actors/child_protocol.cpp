#include "trellis/actors/child_protocol.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;

// Values the parent decoded from an envelope nest at most 64 deep; a result
// is the handler's own, bounded by what this system reads back elsewhere.
constexpr std::size_t max_frame_depth = defaults::max_stored_value_depth + 2;

std::string framed(const value& body) {
  auto bytes = pack_to_string(body);
  std::string out(frame_header_bytes, '\0');
  auto n = static_cast<std::uint32_t>(bytes.size());
  for (std::size_t i = 0; i < frame_header_bytes; ++i) {
    out[i] = static_cast<char>((n >> (8 * (frame_header_bytes - 1 - i))) & 0xff);
  }
  return out + bytes;
}

void put_limit(value::map& m, const char* key, const std::optional<std::int64_t>& v) {
  if (v) {
    m.emplace(key, *v);
  }
}

/// The fields of a decoded frame, each read with its type checked.
class fields {
 public:
  explicit fields(const value::map& m) : m_(m) {}

  expected<const value*> get(const char* key) const {
    auto it = m_.find(key);
    if (it == m_.end()) {
      return error{errc::malformed_envelope, std::string{"frame: field '"} + key + "' is missing"};
    }
    return &it->second;
  }
  expected<std::string> text(const char* key) const {
    auto v = get(key);
    if (!v) {
      return v.error();
    }
    if (!(*v)->is_string()) {
      return wrong(key, "a string");
    }
    return (*v)->as_string();
  }
  expected<std::int64_t> integer(const char* key) const {
    auto v = get(key);
    if (!v) {
      return v.error();
    }
    if (!(*v)->is_integer()) {
      return wrong(key, "an integer");
    }
    return (*v)->as_int();
  }
  expected<std::int32_t> int32(const char* key) const {
    auto v = integer(key);
    if (!v) {
      return v.error();
    }
    if (*v < INT32_MIN || *v > INT32_MAX) {
      return wrong(key, "a 32-bit integer");
    }
    return static_cast<std::int32_t>(*v);
  }
  /// An optional non-negative integer: absent is fine.
  expected<std::optional<std::int64_t>> limit(const char* key) const {
    if (m_.find(key) == m_.end()) {
      return std::optional<std::int64_t>{};
    }
    auto v = integer(key);
    if (!v) {
      return v.error();
    }
    if (*v < 0) {
      return wrong(key, "a non-negative integer");
    }
    return std::optional<std::int64_t>{*v};
  }

 private:
  static error wrong(const char* key, const char* what) {
    return error{errc::malformed_envelope, std::string{"frame: field '"} + key + "' is not " + what};
  }
  const value::map& m_;
};

expected<value::map> decode_map(std::string_view body, std::size_t max_bytes) {
  auto v = unpack_from_string(body, max_bytes, max_frame_depth);
  if (!v) {
    return error{v.error().code(), "frame: " + v.error().message()};
  }
  if (!v->is_map()) {
    return error{errc::malformed_envelope, "frame: not a msgpack map"};
  }
  return std::move(*v).as_map();
}

const char* kind_name(child_reply_kind k) {
  switch (k) {
    case child_reply_kind::result:
      return "result";
    case child_reply_kind::retry:
      return "retry";
    case child_reply_kind::failure:
      return "failure";
    case child_reply_kind::rejected:
      return "rejected";
    case child_reply_kind::progress:
      return "progress";
    case child_reply_kind::replace:
      return "replace";
  }
  return "";
}

}  // namespace

std::string encode_frame(const child_request& request) {
  value::map m;
  m.emplace("task", request.task);
  m.emplace("args", request.args);
  m.emplace("kwargs", request.kwargs);
  m.emplace("workflow_id", request.workflow_id);
  m.emplace("node", static_cast<std::int64_t>(request.node));
  m.emplace("attempt", static_cast<std::int64_t>(request.attempt));
  m.emplace("idempotency_key", request.idempotency_key);
  put_limit(m, "soft_limit_ms", request.soft_limit_ms);
  put_limit(m, "hard_limit_ms", request.hard_limit_ms);
  if (request.chunk) {
    m.emplace("chunk", true);  // written only when set, as the limits are
  }
  return framed(value{std::move(m)});
}

std::string encode_frame(const child_reply& reply) {
  value::map m;
  m.emplace("kind", std::string{kind_name(reply.kind)});
  if (reply.kind == child_reply_kind::result || reply.kind == child_reply_kind::replace) {
    m.emplace("result", reply.result);
  }
  m.emplace("error_type", reply.error_type);
  m.emplace("message", reply.message);
  put_limit(m, "countdown_ms", reply.countdown_ms);
  if (reply.kind == child_reply_kind::progress) {
    put_limit(m, "done", reply.progress.done);
    put_limit(m, "total", reply.progress.total);
    m.emplace("progress_message", reply.progress.message);
    m.emplace("state", reply.progress.state);
  }
  return framed(value{std::move(m)});
}

expected<std::size_t> frame_body_length(std::string_view header, std::size_t max_bytes) {
  if (header.size() < frame_header_bytes) {
    return error{errc::malformed_envelope, "frame: header of " + std::to_string(header.size()) + " bytes, not 4"};
  }
  std::size_t n = 0;
  for (std::size_t i = 0; i < frame_header_bytes; ++i) {
    n = (n << 8) | static_cast<unsigned char>(header[i]);
  }
  if (n == 0 || n > max_bytes) {
    return error{errc::payload_too_large, "frame: announces " + std::to_string(n) + " bytes, allowed 1 to " +
                                              std::to_string(max_bytes)};
  }
  return n;
}

expected<child_request> decode_request(std::string_view body, std::size_t max_bytes) {
  auto m = decode_map(body, max_bytes);
  if (!m) {
    return m.error();
  }
  fields f{*m};
  child_request out;
  auto task = f.text("task");
  auto workflow_id = f.text("workflow_id");
  auto key = f.text("idempotency_key");
  auto node = f.int32("node");
  auto attempt = f.int32("attempt");
  auto soft = f.limit("soft_limit_ms");
  auto hard = f.limit("hard_limit_ms");
  auto args = f.get("args");
  auto kwargs = f.get("kwargs");
  for (const error* e : {task ? nullptr : &task.error(), workflow_id ? nullptr : &workflow_id.error(),
                         key ? nullptr : &key.error(), node ? nullptr : &node.error(),
                         attempt ? nullptr : &attempt.error(), soft ? nullptr : &soft.error(),
                         hard ? nullptr : &hard.error(), args ? nullptr : &args.error(),
                         kwargs ? nullptr : &kwargs.error()}) {
    if (e != nullptr) {
      return *e;
    }
  }
  if (!(*args)->is_array()) {
    return error{errc::malformed_envelope, "frame: field 'args' is not an array"};
  }
  if (!(*kwargs)->is_map()) {
    return error{errc::malformed_envelope, "frame: field 'kwargs' is not a map"};
  }
  out.task = std::move(*task);
  out.workflow_id = std::move(*workflow_id);
  out.idempotency_key = std::move(*key);
  out.node = *node;
  out.attempt = *attempt;
  out.soft_limit_ms = *soft;
  out.hard_limit_ms = *hard;
  if (auto c = m->find("chunk"); c != m->end()) {
    if (!c->second.is_bool()) {
      return error{errc::malformed_envelope, "frame: field 'chunk' is not a bool"};
    }
    out.chunk = c->second.as_bool();
  }
  out.args = (*args)->as_array();
  out.kwargs = (*kwargs)->as_map();
  return out;
}

expected<child_reply> decode_reply(std::string_view body, std::size_t max_bytes) {
  auto m = decode_map(body, max_bytes);
  if (!m) {
    return m.error();
  }
  fields f{*m};
  auto kind = f.text("kind");
  auto type = f.text("error_type");
  auto message = f.text("message");
  auto countdown = f.limit("countdown_ms");
  for (const error* e : {kind ? nullptr : &kind.error(), type ? nullptr : &type.error(),
                         message ? nullptr : &message.error(), countdown ? nullptr : &countdown.error()}) {
    if (e != nullptr) {
      return *e;
    }
  }
  child_reply out;
  bool known = false;
  for (auto k : {child_reply_kind::result, child_reply_kind::retry, child_reply_kind::failure,
                 child_reply_kind::rejected, child_reply_kind::progress, child_reply_kind::replace}) {
    if (*kind == kind_name(k)) {
      out.kind = k;
      known = true;
    }
  }
  if (!known) {
    return error{errc::malformed_envelope, "frame: reply kind '" + kind->substr(0, 32) +
                                               "' is not result, retry, failure, rejected, progress or replace"};
  }
  if (out.kind == child_reply_kind::progress) {
    auto done = f.limit("done");
    auto total = f.limit("total");
    auto text = f.text("progress_message");
    auto state = f.text("state");
    for (const error* e : {done ? nullptr : &done.error(), total ? nullptr : &total.error(),
                           text ? nullptr : &text.error(), state ? nullptr : &state.error()}) {
      if (e != nullptr) {
        return *e;
      }
    }
    // The checks task_context makes, made again: the child's word is not
    // taken for them.
    if (!state->empty()) {
      if (auto problem = custom_state_problem(*state)) {
        return error{errc::malformed_envelope, "frame: progress state: " + *problem};
      }
    }
    out.progress.done = *done;
    out.progress.total = *total;
    out.progress.message = clip_progress_message(std::move(*text));
    out.progress.state = std::move(*state);
  }
  if (out.kind == child_reply_kind::result || out.kind == child_reply_kind::replace) {
    auto result = f.get("result");
    if (!result) {
      return result.error();
    }
    out.result = **result;
  }
  out.error_type = std::move(*type);
  out.message = std::move(*message);
  out.countdown_ms = *countdown;
  return out;
}

frame_read read_frame(int fd, std::size_t max_bytes, std::optional<clock::time_point> deadline, int wake_fd) {
  frame_read out;
  std::string header;
  std::size_t want = frame_header_bytes;
  bool in_body = false;
  std::string* into = &header;
  for (;;) {
    if (into->size() == want) {
      if (in_body) {
        out.status = frame_status::complete;
        return out;
      }
      auto length = frame_body_length(header, max_bytes);
      if (!length) {
        out.status = frame_status::broken;
        out.problem = length.error().message();
        return out;
      }
      want = *length;
      in_body = true;
      into = &out.body;
      continue;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int timeout = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now()).count();
      // Rounded up, so that the wait never ends just before the deadline.
      timeout = left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left + 1, INT32_MAX));
    }
    int ready = ::poll(fds, wake_fd >= 0 ? 2 : 1, timeout);
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      out.status = frame_status::broken;
      out.problem = std::string{"poll: "} + std::strerror(errno);
      return out;
    }
    if (ready == 0 || (fds[0].revents == 0 && fds[1].revents == 0)) {
      if (deadline && clock::now() >= *deadline) {
        out.status = frame_status::timed_out;
        return out;
      }
      continue;
    }
    if (wake_fd >= 0 && fds[1].revents != 0) {
      out.status = frame_status::woken;
      return out;
    }
    // At most 64 KiB per read: the buffer grows with what arrived, not with
    // what the header claimed.
    char chunk[65536];
    auto n = ::recv(fd, chunk, std::min(sizeof chunk, want - into->size()), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      out.status = frame_status::broken;
      out.problem = std::string{"recv: "} + std::strerror(errno);
      return out;
    }
    if (n == 0) {
      bool nothing_yet = !in_body && header.empty();
      out.status = nothing_yet ? frame_status::closed : frame_status::broken;
      if (!nothing_yet) {
        out.problem = "the socket closed in the middle of a frame";
      }
      return out;
    }
    into->append(chunk, static_cast<std::size_t>(n));
  }
}

expected<void> write_frame(int fd, std::string_view frame) {
  while (!frame.empty()) {
    auto n = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return error{errc::task_failed, std::string{"send: "} + std::strerror(errno)};
    }
    frame.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace trellis::detail
