// Replays the fuzzer's corpus (seeds and every crasher ever found) through the
// decoder, so compilers without libFuzzer run it too.

#include "trellis/envelope.hpp"

#include "support/envelopes.hpp"
#include "support/files.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

using trellis::detail::decode;
using trellis::detail::encode;
using trellis::detail::envelope;
using trellis::test::envelope_difference;

TEST_CASE("every fuzz corpus file decodes without throwing, and decoded ones round-trip", "[unit][envelope][fuzz]") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator{TRELLIS_FUZZ_CORPUS_DIR}) {
    if (entry.is_regular_file()) {
      files.push_back(entry.path());
    }
  }
  REQUIRE_FALSE(files.empty());

  std::size_t decoded_count = 0;
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    auto bytes = trellis::test::read_file(path.string());
    REQUIRE(bytes);
    trellis::expected<envelope> first = trellis::error{};
    REQUIRE_NOTHROW(first = decode(*bytes));
    if (!first) {
      continue;
    }
    ++decoded_count;
    auto once = encode(*first);
    auto second = decode(once);
    REQUIRE(second);
    CHECK(envelope_difference(*first, *second) == "");
    CHECK(encode(*second) == once);
  }
  // The seeds include valid envelopes of every type; if none decodes, the
  // round-trip half of this test would silently check nothing.
  CHECK(decoded_count > 0);
}
