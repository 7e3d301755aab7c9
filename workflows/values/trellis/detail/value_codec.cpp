#include "trellis/detail/value_codec.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <vector>

namespace trellis::detail {

namespace {

constexpr std::uint64_t max_int64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

std::uint32_t checked_size(std::size_t n, const char* what) {
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw usage_error(std::string{"cannot encode a "} + what + " of " + std::to_string(n) +
                      " elements: msgpack's limit is 2^32-1");
  }
  return static_cast<std::uint32_t>(n);
}

template <class Stream>
void pack_str_imp(msgpack::packer<Stream>& pk, std::string_view s) {
  auto n = checked_size(s.size(), "string");
  pk.pack_str(n);
  pk.pack_str_body(s.data(), n);
}

// msgpack-cxx 4.1's pack_double writes an integral double as an integer
// (1.0 -> 1, -0.0 -> 0), so a double would come back as an int, or lose its
// sign. Doubles are always written as float64 here; pack_str_body appends
// raw bytes, which is the only raw write a packer offers.
template <class Stream>
void pack_float64(msgpack::packer<Stream>& pk, double d) {
  std::uint64_t bits = 0;
  static_assert(sizeof bits == sizeof d);
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) {
    buf[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
  }
  pk.pack_str_body(buf, sizeof buf);
}

template <class Stream>
void pack_any(msgpack::packer<Stream>& pk, const value& v);

template <class Stream>
void pack_array_imp(msgpack::packer<Stream>& pk, const value::array& a) {
  pk.pack_array(checked_size(a.size(), "array"));
  for (const auto& x : a) {
    pack_any(pk, x);
  }
}

template <class Stream>
void pack_map_imp(msgpack::packer<Stream>& pk, const value::map& m) {
  pk.pack_map(checked_size(m.size(), "map"));
  for (const auto& [k, x] : m) {
    pack_str_imp(pk, k);
    pack_any(pk, x);
  }
}

template <class Stream>
void pack_any(msgpack::packer<Stream>& pk, const value& v) {
  switch (v.type()) {
    case value::kind::nil:
      pk.pack_nil();
      return;
    case value::kind::boolean:
      if (v.as_bool()) {
        pk.pack_true();
      } else {
        pk.pack_false();
      }
      return;
    case value::kind::integer:
      // pack_int64 picks the smallest encoding, so equal values give equal bytes.
      pk.pack_int64(v.as_int());
      return;
    case value::kind::floating:
      pack_float64(pk, v.as_float());
      return;
    case value::kind::string:
      pack_str_imp(pk, v.as_string());
      return;
    case value::kind::binary: {
      const auto& bytes = v.as_binary().bytes;
      auto n = checked_size(bytes.size(), "binary");
      pk.pack_bin(n);
      pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()), n);
      return;
    }
    case value::kind::array:
      pack_array_imp(pk, v.as_array());
      return;
    case value::kind::map:
      pack_map_imp(pk, v.as_map());
      return;
  }
}

/// Per-level counts of items still to read, for the structure check. The
/// first levels live inline so a typical message costs no allocation.
class pending_stack {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  void push(std::uint64_t n) {
    if (size_ < inline_capacity) {
      inline_[size_] = n;
    } else {
      spill_.push_back(n);
    }
    ++size_;
  }
  std::uint64_t& top() noexcept { return size_ <= inline_capacity ? inline_[size_ - 1] : spill_.back(); }
  void pop() noexcept {
    if (size_ > inline_capacity) {
      spill_.pop_back();
    }
    --size_;
  }

 private:
  static constexpr std::size_t inline_capacity = 32;
  std::uint64_t inline_[inline_capacity] = {};
  std::vector<std::uint64_t> spill_;
  std::size_t size_ = 0;
};

std::uint64_t read_be(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out = (out << 8) | p[i];
  }
  return out;
}

}  // namespace

// Walks the encoding once without allocating anything per item: it proves the
// input is one complete msgpack object of bounded depth before msgpack's
// unpacker, which allocates each container's storage as soon as it reads the
// header's claimed length, ever sees it. Every item takes at least one byte,
// so after this check the unpacker allocates at most O(bytes) objects.
expected<void> check_msgpack(std::string_view bytes, std::size_t max_depth) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t pos = 0;
  pending_stack pending;
  std::uint64_t top_level = 1;

  auto truncated = [&](std::size_t item) {
    return error{errc::malformed_envelope, "truncated msgpack data: the item at byte " + std::to_string(item) +
                                               " runs past the end (" + std::to_string(n) + " bytes)"};
  };

  for (;;) {
    while (!pending.empty() && pending.top() == 0) {
      pending.pop();
    }
    if (pending.empty()) {
      if (top_level == 0) {
        break;
      }
      --top_level;
    } else {
      --pending.top();
    }
    if (pos >= n) {
      return truncated(pos);
    }
    const std::size_t start = pos;
    const unsigned char b = data[pos++];
    std::size_t len_bytes = 0;   // size of a length field that follows the type byte
    std::size_t skip = 0;        // payload bytes to skip (fixed-size types)
    std::size_t extra = 0;       // bytes after the length field beyond the length (ext type byte)
    std::uint64_t children = 0;  // items a container holds (maps: keys + values)
    bool container = false;
    bool map = false;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      // fixint, negative fixint, nil, false, true: no payload
    } else if (b <= 0x8f) {
      container = true;
      map = true;
      children = b & 0x0fu;
    } else if (b <= 0x9f) {
      container = true;
      children = b & 0x0fu;
    } else if (b <= 0xbf) {
      skip = b & 0x1fu;
    } else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          len_bytes = 1;
          break;
        case 0xc5:
        case 0xda:
          len_bytes = 2;
          break;
        case 0xc6:
        case 0xdb:
          len_bytes = 4;
          break;
        case 0xc7:
          len_bytes = 1;
          extra = 1;
          break;
        case 0xc8:
          len_bytes = 2;
          extra = 1;
          break;
        case 0xc9:
          len_bytes = 4;
          extra = 1;
          break;
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4:
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xdc:
          container = true;
          len_bytes = 2;
          break;
        case 0xdd:
          container = true;
          len_bytes = 4;
          break;
        case 0xde:
          container = true;
          map = true;
          len_bytes = 2;
          break;
        case 0xdf:
          container = true;
          map = true;
          len_bytes = 4;
          break;
        default:  // 0xc1 is the one byte msgpack never uses
          return error{errc::malformed_envelope, "invalid msgpack type byte 0xc1 at byte " + std::to_string(start)};
      }
    }

    if (len_bytes != 0) {
      if (n - pos < len_bytes) {
        return truncated(start);
      }
      std::uint64_t len = read_be(data + pos, len_bytes);
      pos += len_bytes;
      if (container) {
        children = len;
      } else {
        // len < 2^32, so the sum cannot overflow.
        skip = static_cast<std::size_t>(len) + extra;
      }
    }
    if (container) {
      if (pending.size() >= max_depth) {
        return error{errc::payload_too_large, "msgpack nesting deeper than " + std::to_string(max_depth) +
                                                  " levels at byte " + std::to_string(start)};
      }
      pending.push(map ? children * 2 : children);
    } else if (skip != 0) {
      if (n - pos < skip) {
        return truncated(start);
      }
      pos += skip;
    }
  }
  if (pos != n) {
    return error{errc::malformed_envelope, std::to_string(n - pos) +
                                               " trailing bytes after the msgpack value (which ends at byte " +
                                               std::to_string(pos) + ")"};
  }
  return {};
}

namespace {

// Strings and binaries stay in the caller's buffer: they are copied exactly
// once, into the value or envelope field that keeps them.
bool reference_input(msgpack::type::object_type, std::size_t, void*) { return true; }

/// Reads into the caller's value in place: children are built where they
/// will live (array slots, map nodes), so nothing is moved level by level.
struct reader {
  std::size_t max_depth;

  std::optional<error> read(const msgpack::object& o, std::size_t depth, value& out) const {
    switch (o.type) {
      case msgpack::type::NIL:
        out = value{};
        return std::nullopt;
      case msgpack::type::BOOLEAN:
        out = value{o.via.boolean};
        return std::nullopt;
      case msgpack::type::POSITIVE_INTEGER:
        if (o.via.u64 > max_int64) {
          return error{errc::malformed_envelope,
                       "integer " + std::to_string(o.via.u64) + " is above the largest 64-bit signed integer"};
        }
        out = value{static_cast<std::int64_t>(o.via.u64)};
        return std::nullopt;
      case msgpack::type::NEGATIVE_INTEGER:
        out = value{o.via.i64};
        return std::nullopt;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64:
        out = value{o.via.f64};
        return std::nullopt;
      case msgpack::type::STR:
        out = value{std::string{o.via.str.ptr, o.via.str.size}};
        return std::nullopt;
      case msgpack::type::BIN: {
        const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
        out = value{binary{std::vector<std::uint8_t>(p, p + o.via.bin.size)}};
        return std::nullopt;
      }
      case msgpack::type::ARRAY:
        return read_array(o, depth + 1, out);
      case msgpack::type::MAP:
        return read_map(o, depth + 1, out);
      case msgpack::type::EXT:
        return error{errc::malformed_envelope,
                     "msgpack ext type " + std::to_string(static_cast<int>(o.via.ext.type())) + " is not supported"};
    }
    return error{errc::malformed_envelope, "unknown msgpack object type"};
  }

  error too_deep() const {
    return error{errc::payload_too_large, "value nesting deeper than " + std::to_string(max_depth) + " levels"};
  }

  std::optional<error> read_array(const msgpack::object& o, std::size_t depth, value& out) const {
    if (depth > max_depth) {
      return too_deep();
    }
    out = value{value::array(o.via.array.size)};
    auto& items = out.as_array();
    for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
      if (auto err = read(o.via.array.ptr[i], depth, items[i])) {
        return err;
      }
    }
    return std::nullopt;
  }

  std::optional<error> read_map(const msgpack::object& o, std::size_t depth, value& out) const {
    if (depth > max_depth) {
      return too_deep();
    }
    out = value{value::map{}};
    auto& entries = out.as_map();
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) {
        return error{errc::malformed_envelope, std::string{"map key must be str, got "} + kind_name(kv.key.type)};
      }
      // Our encoder writes keys in order, so the end is almost always the
      // right hint and each insert is O(1); a grown size proves the key new.
      auto before = entries.size();
      auto it =
          entries.emplace_hint(entries.end(), std::piecewise_construct,
                               std::forward_as_tuple(kv.key.via.str.ptr, kv.key.via.str.size), std::forward_as_tuple());
      if (entries.size() == before) {
        return error{errc::malformed_envelope, "duplicate map key '" + it->first + "'"};
      }
      if (auto err = read(kv.val, depth, it->second)) {
        return err;
      }
    }
    return std::nullopt;
  }
};

}  // namespace

void pack_value(msgpack::packer<msgpack::sbuffer>& pk, const value& v) { pack_any(pk, v); }

void pack_value(msgpack::packer<string_sink>& pk, const value& v) { pack_any(pk, v); }

namespace {

/// A msgpack stream that only counts what would be written.
struct byte_counter {
  std::size_t bytes = 0;
  void write(const char*, std::size_t n) { bytes += n; }
};

}  // namespace

std::size_t packed_size(const value& v) {
  byte_counter counter;
  msgpack::packer<byte_counter> pk(counter);
  pack_any(pk, v);
  return counter.bytes;
}

void pack_string(msgpack::packer<string_sink>& pk, std::string_view s) { pack_str_imp(pk, s); }

void pack_array(msgpack::packer<string_sink>& pk, const value::array& a) { pack_array_imp(pk, a); }

void pack_map(msgpack::packer<string_sink>& pk, const value::map& m) { pack_map_imp(pk, m); }

expected<value> value_from_msgpack(const msgpack::object& o, std::size_t max_depth) {
  // Built in the result's own storage: no value is moved into it afterwards.
  expected<value> out{value{}};
  if (auto err = reader{max_depth}.read(o, 0, *out)) {
    return std::move(*err);
  }
  return out;
}

const char* kind_name(msgpack::type::object_type t) noexcept {
  switch (t) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "int";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

expected<msgpack::object_handle> unpack_checked(std::string_view bytes, std::size_t max_depth) {
  // check_msgpack already bounds everything; these limits are a second line
  // of defence should the two parsers ever disagree.
  const std::size_t n = bytes.size();
  const msgpack::unpack_limit limit{n, n / 2, n, n, n, max_depth};
  std::size_t offset = 0;
  bool referenced = false;
  try {
    auto handle = msgpack::unpack(bytes.data(), n, offset, referenced, &reference_input, nullptr, limit);
    if (offset != n) {
      return error{errc::malformed_envelope, "trailing bytes after the msgpack value"};
    }
    return expected<msgpack::object_handle>{std::move(handle)};
  } catch (const msgpack::size_overflow& ex) {
    return error{errc::payload_too_large, std::string{"msgpack limit exceeded: "} + ex.what()};
  } catch (const msgpack::unpack_error& ex) {
    return error{errc::malformed_envelope, std::string{"invalid msgpack: "} + ex.what()};
  } catch (const msgpack::type_error& ex) {
    return error{errc::malformed_envelope, std::string{"invalid msgpack: "} + ex.what()};
  } catch (const std::bad_alloc&) {
    return error{errc::payload_too_large, "msgpack data needs more memory than is available"};
  }
}

std::string pack_to_string(const value& v) {
  std::string out;
  string_sink sink{out};
  msgpack::packer<string_sink> pk{sink};
  pack_any(pk, v);
  sink.finish();
  return out;
}

expected<value> unpack_from_string(std::string_view bytes, std::size_t max_bytes, std::size_t max_depth) {
  if (bytes.size() > max_bytes) {
    return error{errc::payload_too_large, "msgpack value of " + std::to_string(bytes.size()) +
                                              " bytes exceeds the limit of " + std::to_string(max_bytes)};
  }
  if (auto checked = check_msgpack(bytes, max_depth); !checked) {
    return checked.error();
  }
  auto handle = unpack_checked(bytes, max_depth);
  if (!handle) {
    return handle.error();
  }
  return value_from_msgpack(handle->get(), max_depth);
}

}  // namespace trellis::detail
