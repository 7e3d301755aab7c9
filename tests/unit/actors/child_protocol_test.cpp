// The frames between a process-pool worker and its handler children: what
// goes in comes out, and whatever a crashed or hostile child writes (a cut
// frame, a huge length, fields of the wrong type) is an error, never a crash
// or an allocation of the size it claims.

#include "trellis/actors/child_protocol.hpp"
#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include <sys/socket.h>
#include <unistd.h>

using namespace trellis;
using namespace trellis::detail;

namespace {

constexpr std::size_t limit = 1024 * 1024;

/// The body of a frame (its 4-byte prefix dropped).
std::string body_of(const std::string& frame) { return frame.substr(frame_header_bytes); }

/// A frame around `body`, announcing `length` bytes.
std::string frame_around(const std::string& body, std::uint32_t length) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * (3 - i))) & 0xff);
  }
  return out + body;
}

/// A connected pair of stream sockets, closed at the end.
struct socket_pair {
  int fds[2] = {-1, -1};
  socket_pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0); }
  ~socket_pair() {
    for (int fd : fds) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  void close_writer() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

}  // namespace

TEST_CASE("a call and each kind of reply come back out of their frames as they went in",
          "[unit][process_pool]") {
  child_request call;
  call.task = "orders.charge";
  call.args = value::array{value{std::int64_t{7}}, value{"A-17"}};
  call.kwargs = value::map{{"currency", value{"EUR"}}};
  call.workflow_id = "wf-1";
  call.node = 3;
  call.attempt = 2;
  call.idempotency_key = "wf-1/3";
  call.soft_limit_ms = 250;
  auto back = decode_request(body_of(encode_frame(call)), limit);
  REQUIRE(back);
  CHECK(back->task == call.task);
  CHECK(value{back->args} == value{call.args});
  CHECK(value{back->kwargs} == value{call.kwargs});
  CHECK(back->workflow_id == "wf-1");
  CHECK(back->node == 3);
  CHECK(back->attempt == 2);
  CHECK(back->idempotency_key == "wf-1/3");
  CHECK(back->soft_limit_ms == std::optional<std::int64_t>{250});
  CHECK_FALSE(back->hard_limit_ms);
  CHECK_FALSE(back->chunk);
  call.chunk = true;
  auto chunk = decode_request(body_of(encode_frame(call)), limit);
  REQUIRE(chunk);
  CHECK(chunk->chunk);
  call.chunk = false;

  SECTION("result") {
    child_reply r;
    r.result = value::array{value{"x"}, value{1.5}};
    auto out = decode_reply(body_of(encode_frame(r)), limit);
    REQUIRE(out);
    CHECK(out->kind == child_reply_kind::result);
    CHECK(out->result == r.result);
  }
  SECTION("replace") {
    child_reply r;
    r.kind = child_reply_kind::replace;
    r.result = value::map{{"group", value::array{}}};
    auto out = decode_reply(body_of(encode_frame(r)), limit);
    REQUIRE(out);
    CHECK(out->kind == child_reply_kind::replace);
    CHECK(out->result == r.result);
  }
  SECTION("retry") {
    child_reply r;
    r.kind = child_reply_kind::retry;
    r.message = "gateway busy";
    r.countdown_ms = 1500;
    auto out = decode_reply(body_of(encode_frame(r)), limit);
    REQUIRE(out);
    CHECK(out->kind == child_reply_kind::retry);
    CHECK(out->message == "gateway busy");
    CHECK(out->countdown_ms == std::optional<std::int64_t>{1500});
  }
  SECTION("failure and rejection") {
    for (auto kind : {child_reply_kind::failure, child_reply_kind::rejected}) {
      child_reply r;
      r.kind = kind;
      r.error_type = "std::invalid_argument";
      r.message = "no such order";
      auto out = decode_reply(body_of(encode_frame(r)), limit);
      REQUIRE(out);
      CHECK(out->kind == kind);
      CHECK(out->error_type == "std::invalid_argument");
      CHECK(out->message == "no such order");
    }
  }
}

TEST_CASE("a frame length of zero or beyond the limit is refused before anything is read or allocated",
          "[unit][process_pool]") {
  CHECK(frame_body_length(frame_around("", 16), 64).value() == 16);
  auto zero = frame_body_length(frame_around("", 0), 64);
  REQUIRE_FALSE(zero);
  CHECK(zero.error().code() == errc::payload_too_large);
  auto huge = frame_body_length(frame_around("", 0xffffffffu), 64);
  REQUIRE_FALSE(huge);
  CHECK(huge.error().code() == errc::payload_too_large);
  auto short_header = frame_body_length(std::string(2, '\0'), 64);
  REQUIRE_FALSE(short_header);
  CHECK(short_header.error().code() == errc::malformed_envelope);
}

TEST_CASE("a reply whose body is cut, not a map, or has fields of the wrong type is an error",
          "[unit][process_pool]") {
  child_reply good;
  good.result = value{"fine"};
  auto body = body_of(encode_frame(good));

  SECTION("truncated") {
    for (std::size_t n = 0; n < body.size(); ++n) {
      CHECK_FALSE(decode_reply(body.substr(0, n), limit));
    }
  }
  SECTION("over the limit") {
    auto r = decode_reply(body, body.size() - 1);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::payload_too_large);
  }
  SECTION("not a map") {
    auto r = decode_reply(pack_to_string(value{value::array{value{"result"}}}), limit);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
  }
  SECTION("wrong types and unknown kinds") {
    auto with = [&](const char* key, value v) {
      value::map m{{"kind", value{"result"}}, {"result", value{1}}, {"error_type", value{""}}, {"message", value{""}}};
      m[key] = std::move(v);
      return decode_reply(pack_to_string(value{std::move(m)}), limit);
    };
    CHECK(with("kind", value{"result"}));
    CHECK_FALSE(with("kind", value{std::int64_t{1}}));
    CHECK_FALSE(with("kind", value{"explode"}));
    CHECK_FALSE(with("message", value{std::int64_t{3}}));
    CHECK_FALSE(with("error_type", value::array{}));
    CHECK_FALSE(with("countdown_ms", value{"soon"}));
    CHECK_FALSE(with("countdown_ms", value{std::int64_t{-5}}));
    auto missing = decode_reply(pack_to_string(value{value::map{{"kind", value{"result"}}}}), limit);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message().find("missing") != std::string::npos);
  }
}

TEST_CASE("a call with a node beyond 32 bits or arguments that are not a list is an error", "[unit][process_pool]") {
  auto with = [](const char* key, value v) {
    value::map m{{"task", value{"add"}},           {"args", value::array{}},     {"kwargs", value::map{}},
                 {"workflow_id", value{"wf"}},     {"node", value{std::int64_t{1}}}, {"attempt", value{std::int64_t{1}}},
                 {"idempotency_key", value{"k"}}};
    m[key] = std::move(v);
    return decode_request(pack_to_string(value{std::move(m)}), limit);
  };
  CHECK(with("task", value{"add"}));
  CHECK_FALSE(with("node", value{std::int64_t{1} << 40}));
  CHECK_FALSE(with("args", value::map{}));
  CHECK_FALSE(with("kwargs", value::array{}));
  CHECK_FALSE(with("soft_limit_ms", value{"never"}));
  CHECK(with("chunk", value{true}));
  CHECK_FALSE(with("chunk", value{std::int64_t{1}}));
}

TEST_CASE("reading a frame from a socket: a whole frame, a clean close, a cut frame, a hostile length, a deadline",
          "[unit][process_pool]") {
  socket_pair s;
  child_reply r;
  r.result = value{"done"};
  auto frame = encode_frame(r);

  SECTION("a whole frame, written in two pieces") {
    REQUIRE(write_frame(s.fds[1], frame.substr(0, 3)));
    REQUIRE(write_frame(s.fds[1], frame.substr(3)));
    auto in = read_frame(s.fds[0], limit);
    REQUIRE(in.status == frame_status::complete);
    CHECK(decode_reply(in.body, limit)->result == value{"done"});
  }
  SECTION("closed before a frame") {
    s.close_writer();
    CHECK(read_frame(s.fds[0], limit).status == frame_status::closed);
  }
  SECTION("closed in the middle of a frame") {
    REQUIRE(write_frame(s.fds[1], frame.substr(0, frame.size() - 2)));
    s.close_writer();
    auto in = read_frame(s.fds[0], limit);
    CHECK(in.status == frame_status::broken);
    CHECK_FALSE(in.problem.empty());
  }
  SECTION("a length of 4 GiB") {
    REQUIRE(write_frame(s.fds[1], frame_around("xx", 0xffffffffu)));
    auto in = read_frame(s.fds[0], limit);
    CHECK(in.status == frame_status::broken);
    CHECK(in.body.empty());
  }
  SECTION("nothing before the deadline") {
    auto started = std::chrono::steady_clock::now();
    auto in = read_frame(s.fds[0], limit, started + std::chrono::milliseconds{20});
    CHECK(in.status == frame_status::timed_out);
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds{20});
  }
  SECTION("woken") {
    socket_pair wake;
    REQUIRE(write_frame(wake.fds[1], "x"));
    CHECK(read_frame(s.fds[0], limit, std::nullopt, wake.fds[0]).status == frame_status::woken);
  }
}

TEST_CASE("a progress report crosses as it was made, and one the context would refuse is an error",
          "[unit][process_pool]") {
  child_reply r;
  r.kind = child_reply_kind::progress;
  r.progress.done = 3;
  r.progress.total = 4;
  r.progress.message = "step 3";
  r.progress.state = "WAITING";
  auto out = decode_reply(body_of(encode_frame(r)), limit);
  REQUIRE(out);
  CHECK(out->kind == child_reply_kind::progress);
  CHECK(out->progress == r.progress);

  SECTION("a state name that is not a custom state name") {
    r.progress.state = "STARTED";  // a built-in state
    CHECK_FALSE(decode_reply(body_of(encode_frame(r)), limit));
    r.progress.state = "lower case";
    CHECK_FALSE(decode_reply(body_of(encode_frame(r)), limit));
  }
  SECTION("a negative count") {
    r.progress.done = -1;
    CHECK_FALSE(decode_reply(body_of(encode_frame(r)), limit));
  }
  SECTION("a message longer than a report may carry is cut") {
    r.progress.message = std::string(10'000, 'm');
    auto cut = decode_reply(body_of(encode_frame(r)), limit);
    REQUIRE(cut);
    CHECK(cut->progress.message.size() <= trellis::defaults::max_progress_message_bytes);
  }
}
