// Packs read from the wire: a frame count in a header and length-prefixed
// frames. Round trips, and every lie a forged header or body can tell,
// refused as malformed_envelope before anything is sized by it.

#include "trellis/transport/pack_codec.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

using namespace trellis;
using namespace trellis::detail;

namespace {

std::string pack_of(const std::vector<std::string>& items) {
  return pack_frames(0, items.size(), [&](std::size_t i) -> const std::string& { return items[i]; });
}

}  // namespace

TEST_CASE("A pack of envelopes, empty ones included, unpacks to the same envelopes", "[unit]") {
  std::vector<std::string> items{"one", "", std::string("\0\xff", 2), std::string(70'000, 'x')};
  auto body = pack_of(items);
  auto count = parse_pack_count(std::to_string(items.size()), body.size());
  REQUIRE(count);
  auto back = unpack_frames(body, *count);
  REQUIRE(back);
  CHECK(*back == items);
}

TEST_CASE("A pack header that is not a count the body can hold is refused as malformed_envelope", "[unit]") {
  const std::size_t body = 40;  // room for at most 10 empty frames
  for (const char* header : {"99999999999999999999999", "18446744073709551616", "-1", "", " 1", "1 ", "+1", "0x2",
                             "1e3", "0", "11", "4294967296"}) {
    INFO(header);
    auto count = parse_pack_count(header, body);
    REQUIRE_FALSE(count);
    CHECK(count.error().code() == errc::malformed_envelope);
    CHECK(count.error().message().size() < 200);
  }
  CHECK(*parse_pack_count("10", body) == 10);
  CHECK(*parse_pack_count("007", body) == 7);
  // A long forged header is quoted by its start only.
  auto long_header = std::string(1 << 20, '9');
  auto refused = parse_pack_count(long_header, body);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message().size() < 300);
}

TEST_CASE("Frames that do not add up to the announced count and the body's bytes are refused", "[unit]") {
  auto two = pack_of({"ab", "cd"});
  CHECK(unpack_frames(two, 2));
  for (std::size_t count : {std::size_t{1}, std::size_t{3}, std::size_t{1} << 40}) {
    INFO(count);
    auto r = unpack_frames(two, count);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
  }
  // A frame claiming more bytes than remain; a trailing partial length.
  CHECK_FALSE(unpack_frames(std::string("\xff\xff\xff\xff", 4), 1));
  CHECK_FALSE(unpack_frames(std::string("\x05\x00\x00\x00hello", 9), 2));
  CHECK_FALSE(unpack_frames(two + std::string("\x01\x00", 2), 2));
  CHECK_FALSE(unpack_frames(two + "x", 2));
}

TEST_CASE("Random bodies and counts never throw and never yield more frames than announced", "[unit]") {
  std::mt19937_64 rng{20261205};
  for (int i = 0; i < 20'000; ++i) {
    std::string body(rng() % 64, '\0');
    for (auto& c : body) {
      c = static_cast<char>(rng() % 8 == 0 ? rng() : rng() % 4);
    }
    auto header = std::to_string(rng() % 24);
    auto count = parse_pack_count(header, body.size());
    if (!count) {
      continue;
    }
    auto frames = unpack_frames(body, *count);
    if (frames) {
      CHECK(frames->size() == *count);
    }
  }
}
