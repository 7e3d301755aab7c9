// libFuzzer target for the envelope decoder. Any input must decode or be
// rejected without a crash, a sanitizer report or an exception; an input that
// decodes must re-encode to bytes that decode again and re-encode to the very
// same bytes (the encoding of a decoded envelope is canonical).
//
// Build: cmake -DTRELLIS_FUZZ=ON with clang; run against tests/fuzz/corpus.

#include "trellis/envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using trellis::detail::decode;
  using trellis::detail::encode;
  std::string_view input{reinterpret_cast<const char*>(data), size};
  auto first = decode(input);
  if (!first) {
    return 0;
  }
  std::string once = encode(*first);
  auto second = decode(once);
  if (!second) {
    std::fprintf(stderr, "re-encoded envelope does not decode: %s\n", to_string(second.error()).c_str());
    std::abort();
  }
  if (encode(*second) != once) {
    std::fprintf(stderr, "encode(decode(encode(decode(x)))) differs from encode(decode(x))\n");
    std::abort();
  }
  return 0;
}
