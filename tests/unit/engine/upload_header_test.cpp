// The stub header of a message that travels in pieces (nats_uploads.hpp):
// read strictly, since every field sizes work done for a stranger.

#include "trellis/transport/nats_uploads.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using trellis::errc;
using trellis::detail::max_upload_bytes;
using trellis::detail::parse_upload_header;

TEST_CASE("A well-formed upload header gives its id, size and piece count", "[unit][uploads]") {
  auto ref = parse_upload_header("0123abcd 3000000 3");
  REQUIRE(ref);
  CHECK(ref->id == "0123abcd");
  CHECK(ref->bytes == 3'000'000);
  CHECK(ref->pieces == 3);
  auto largest = parse_upload_header(std::string(64, 'f') + " " + std::to_string(max_upload_bytes()) + " 1000000");
  CHECK(largest);
  CHECK(parse_upload_header("a 1 1"));
}

TEST_CASE("Every malformed upload header is malformed_envelope, quoting at most 64 characters", "[unit][uploads]") {
  const std::string long_id(65, 'a');
  const std::vector<std::string> cases{"",
                                       " ",
                                       "abc",
                                       "abc 10",
                                       "abc 10 2 1",
                                       "abc  10 2",
                                       " abc 10 2",
                                       "abc 10 2 ",
                                       "ABC 10 2",
                                       "xyz 10 2",
                                       "ab-c 10 2",
                                       long_id + " 10 2",
                                       "abc 0 1",
                                       "abc 10 0",
                                       "abc 10 11",
                                       "abc -1 1",
                                       "abc +10 1",
                                       "abc 010 1",
                                       "abc 10 01",
                                       "abc 1e3 1",
                                       "abc 0x10 1",
                                       "abc 18446744073709551616 1",
                                       "abc 99999999999999999999999 1",
                                       "abc " + std::to_string(max_upload_bytes() + 1) + " 1",
                                       "abc 2000000 1000001",
                                       "abc 10\t2",
                                       "abc 10 2\n"};
  for (const auto& bad : cases) {
    INFO("'" << bad << "'");
    auto ref = parse_upload_header(bad);
    REQUIRE_FALSE(ref);
    CHECK(ref.error().code() == errc::malformed_envelope);
    CHECK(ref.error().message().size() < 250);
  }
  auto huge = parse_upload_header(std::string(10'000, '7'));
  REQUIRE_FALSE(huge);
  CHECK(huge.error().message().size() < 250);
}
