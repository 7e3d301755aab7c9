// Replays the fuzzer's corpus (seeds and every crasher ever found) through the
// decoder, so compilers without libFuzzer run it too.

#include "trellis/envelope.hpp"

#include "trellis/detail/value_codec.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using trellis::value;
using trellis::detail::decode;
using trellis::detail::encode;
using trellis::detail::envelope;

namespace {

bool same_value(const value& a, const value& b) {
  // Bytes settle NaN, which never equals itself.
  return a == b || trellis::detail::pack_to_string(a) == trellis::detail::pack_to_string(b);
}

bool same_envelope(const envelope& a, const envelope& b) {
  return a.v == b.v && a.type == b.type && a.id == b.id && a.workflow_id == b.workflow_id && a.node == b.node &&
         a.attempt == b.attempt && a.task == b.task && a.queue == b.queue &&
         same_value(value{a.args}, value{b.args}) && same_value(value{a.kwargs}, value{b.kwargs}) &&
         same_value(value{a.options}, value{b.options}) && same_value(a.payload, b.payload) &&
         a.status == b.status && a.error_type == b.error_type && a.error_message == b.error_message &&
         a.trace == b.trace && a.sent_at == b.sent_at && a.duration_us == b.duration_us;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  REQUIRE(in);
  return std::string{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

}  // namespace

TEST_CASE("every fuzz corpus file decodes without throwing, and decoded ones round-trip",
          "[unit][envelope][fuzz]") {
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
    auto bytes = read_file(path);
    trellis::expected<envelope> first = trellis::error{};
    REQUIRE_NOTHROW(first = decode(bytes));
    if (!first) {
      continue;
    }
    ++decoded_count;
    auto once = encode(*first);
    auto second = decode(once);
    REQUIRE(second);
    CHECK(same_envelope(*first, *second));
    CHECK(encode(*second) == once);
  }
  // The seeds include valid envelopes of every type; if none decodes, the
  // round-trip half of this test would silently check nothing.
  CHECK(decoded_count > 0);
}
