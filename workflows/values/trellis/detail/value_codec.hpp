#pragma once

/// @file
/// Internal: `value` <-> msgpack, shared by the envelope codec and the SQLite
/// store (which keeps values as msgpack BLOBs). Not a public header: it pulls
/// in <msgpack.hpp>.
///
/// Reading is strict and never throws on bad input: integers above INT64_MAX,
/// ext types, non-string map keys and duplicate map keys are
/// `malformed_envelope`; nesting beyond the limit is `payload_too_large`.

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace trellis::detail {

/// A msgpack stream that writes into a `std::string`, so an encoder fills its
/// output buffer directly instead of copying out of an `sbuffer`. Packers
/// write many pieces of a few bytes; the string is grown in large steps and
/// each piece is a plain copy, rather than a call to `append` per piece.
/// Call `finish()` once packing is done to trim the string to what was written.
class string_sink {
 public:
  /// Writes after what `out` already holds, making room for `size_hint`
  /// bytes up front; `out` must outlive the sink.
  explicit string_sink(std::string& out, std::size_t size_hint = 0) : out_(&out), used_(out.size()) {
    out.resize(used_ + size_hint);
  }

  void write(const char* data, std::size_t size) {
    // An empty binary's data() may be null, and memcpy from null is undefined
    // even for zero bytes (the fuzzer found this).
    if (size == 0) {
      return;
    }
    if (out_->size() - used_ < size) {
      grow(size);
    }
    std::memcpy(out_->data() + used_, data, size);
    used_ += size;
  }

  /// Trims the string to the bytes written.
  void finish() { out_->resize(used_); }

 private:
  void grow(std::size_t size) { out_->resize(std::max(out_->size() * 2, used_ + size) + 64); }

  std::string* out_;
  std::size_t used_;
};

/// Writes `v` with the smallest msgpack encodings (ints) and float64 for
/// doubles, so equal values always encode to equal bytes. Throws
/// `usage_error` for a string, binary, array or map with more than 2^32-1
/// elements (msgpack cannot express it).
void pack_value(msgpack::packer<msgpack::sbuffer>& pk, const value& v);
/// As above, writing into a `std::string`.
void pack_value(msgpack::packer<string_sink>& pk, const value& v);
/// Writes a string the way `pack_value` writes a string value.
void pack_string(msgpack::packer<string_sink>& pk, std::string_view s);
/// Writes an array the way `pack_value` writes an array value, without
/// wrapping it in a `value` first.
void pack_array(msgpack::packer<string_sink>& pk, const value::array& a);
/// Writes a map the way `pack_value` writes a map value.
void pack_map(msgpack::packer<string_sink>& pk, const value::map& m);

/// Converts an unpacked msgpack object into a value. A scalar has depth 0 and
/// each array or map adds one; deeper than `max_depth` is `payload_too_large`.
expected<value> value_from_msgpack(const msgpack::object& o, std::size_t max_depth);

/// The kind name of a msgpack object type, as `to_string(value::kind)` spells
/// it ("int", "str", ...), plus "ext".
const char* kind_name(msgpack::type::object_type t) noexcept;

/// Checks that `bytes` hold exactly one well-formed msgpack object nested no
/// deeper than `max_depth` (a scalar is depth 0), without allocating per item.
/// Errors: `malformed_envelope` (empty, truncated, trailing bytes, invalid
/// byte), `payload_too_large` (too deep).
expected<void> check_msgpack(std::string_view bytes, std::size_t max_depth);

/// Unpacks bytes that passed `check_msgpack`. The check is what makes this
/// safe against a few bytes claiming a 4-billion element array (msgpack's
/// unpacker allocates a container's storage as soon as it reads the claimed
/// length); without it the unpack limits and caught exceptions still keep it
/// from throwing, but allocation is bounded only by the byte count times a
/// constant per level. Strings and binaries in the result point into
/// `bytes`, which must outlive the handle. Never throws.
expected<msgpack::object_handle> unpack_checked(std::string_view bytes, std::size_t max_depth);

/// `value` -> msgpack bytes.
std::string pack_to_string(const value& v);

/// `pack_to_string(v).size()`, counted without writing: how large a value
/// is on the wire and in the store, for the size limits.
std::size_t packed_size(const value& v);

/// msgpack bytes -> `value`, rejecting more than `max_bytes` bytes and
/// nesting deeper than `max_depth` with `payload_too_large`.
expected<value> unpack_from_string(std::string_view bytes, std::size_t max_bytes, std::size_t max_depth);

}  // namespace trellis::detail
