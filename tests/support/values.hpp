#pragma once

/// @file
/// Values and hand-packed msgpack for the codec tests: bytes our encoder never
/// writes, deep nesting, and value equality that also holds for NaN.

#include "trellis/detail/value_codec.hpp"
#include "trellis/value.hpp"

#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace trellis::test {

/// The packer the hand-packing helpers write with.
using raw_packer = msgpack::packer<msgpack::sbuffer>;

/// The bytes that `fn` writes with a plain msgpack packer, for inputs our
/// encoder never writes (wrong types, odd encodings, broken structure).
template <class Fn>
std::string raw_msgpack(Fn&& fn) {
  msgpack::sbuffer buf;
  raw_packer pk{buf};
  fn(pk);
  return std::string{buf.data(), buf.size()};
}

/// Packs `k` as a msgpack str: a map key, or any string written by hand.
inline void pack_key(raw_packer& pk, std::string_view k) {
  pk.pack_str(static_cast<std::uint32_t>(k.size()));
  pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
}

/// An array nested `depth` levels deep (depth 0 is the scalar 1).
inline value nested(std::size_t depth) {
  value v{1};
  for (std::size_t i = 0; i < depth; ++i) {
    v = value::array{v};
  }
  return v;
}

/// Whether two values are the same, NaN included.
inline bool same_value(const value& a, const value& b) {
  // Bytes settle NaN, which never equals itself.
  return a == b || detail::pack_to_string(a) == detail::pack_to_string(b);
}

}  // namespace trellis::test
