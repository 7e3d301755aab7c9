#pragma once

/// @file
/// `trellis::value`: the dynamically typed value that task arguments, keyword
/// arguments and results are made of. It is exactly what msgpack can carry
/// (nil, bool, 64-bit integer, double, string, binary, array, map with string
/// keys), so a value survives the wire unchanged.

#include "trellis/error.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace trellis {

/// Raw bytes, kept apart from text (msgpack `bin`).
struct binary {
  std::vector<std::uint8_t> bytes;
  friend bool operator==(const binary& a, const binary& b) { return a.bytes == b.bytes; }
};

/// A msgpack-shaped value. Copyable, comparable, printable as JSON.
class value {
 public:
  using array = std::vector<value>;
  using map = std::map<std::string, value>;

  /// The kinds a value can hold, in the order of the underlying variant.
  /// One name per kind: the enumerator, the `is_`/`as_` pair and the name
  /// `to_string` gives are the same word, spelled out in the enumerator
  /// where C++ reserves it (`boolean`, `integer`, `floating`) and short in
  /// `to_string`, as msgpack and Python write it ("int", "str", "bin"). A
  /// float is a 64-bit IEEE double, as in JSON, msgpack's float64 and Python.
  enum class kind : std::uint8_t { nil, boolean, integer, floating, string, binary, array, map };

  value() = default;
  value(std::nullptr_t) {}                              // NOLINT
  value(bool b) : data_(b) {}                           // NOLINT
  value(double d) : data_(d) {}                         // NOLINT
  value(float d) : data_(static_cast<double>(d)) {}     // NOLINT
  value(const char* s) : data_(std::string{s}) {}       // NOLINT
  value(std::string s) : data_(std::move(s)) {}         // NOLINT
  value(std::string_view s) : data_(std::string{s}) {}  // NOLINT
  value(binary b) : data_(std::move(b)) {}              // NOLINT
  value(array a) : data_(std::move(a)) {}               // NOLINT
  value(map m) : data_(std::move(m)) {}                 // NOLINT

  /// Any integral type except bool. Values are signed 64-bit (as msgpack
  /// carries them in Trellis); an unsigned value above INT64_MAX throws
  /// `usage_error` instead of silently wrapping.
  template <class Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
  value(Int i) : data_(checked_integer(i)) {}  // NOLINT

  /// A vector of anything convertible to value becomes an array.
  template <class T, std::enable_if_t<!std::is_same_v<T, value>, int> = 0>
  value(const std::vector<T>& xs) : data_(array(xs.begin(), xs.end())) {}  // NOLINT

  kind type() const noexcept { return static_cast<kind>(data_.index()); }
  bool is_nil() const noexcept { return type() == kind::nil; }
  bool is_bool() const noexcept { return type() == kind::boolean; }
  bool is_integer() const noexcept { return type() == kind::integer; }
  bool is_float() const noexcept { return type() == kind::floating; }
  bool is_number() const noexcept { return is_integer() || is_float(); }
  bool is_string() const noexcept { return type() == kind::string; }
  bool is_binary() const noexcept { return type() == kind::binary; }
  bool is_array() const noexcept { return type() == kind::array; }
  bool is_map() const noexcept { return type() == kind::map; }

  /// Accessors; each throws `usage_error` naming both kinds on a mismatch.
  bool as_bool() const;
  std::int64_t as_int() const;
  /// Integers convert to double; a double does not convert to an integer.
  double as_float() const;
  const std::string& as_string() const&;
  const binary& as_binary() const&;
  const array& as_array() const&;
  array& as_array() &;
  const map& as_map() const&;
  map& as_map() &;
  /// On a temporary these move the content out, so that
  /// `handle.error_details().as_map()` is a map, not a dangling reference.
  std::string as_string() &&;
  binary as_binary() &&;
  array as_array() &&;
  map as_map() &&;

  /// Typed conversion for handlers: `v.as<std::vector<int>>()`. Throws
  /// `usage_error` when the value does not have that shape.
  template <class T>
  T as() const;

  /// Whether `as<T>()` would succeed, without throwing.
  template <class T>
  bool is() const noexcept;

  friend bool operator==(const value& a, const value& b) { return a.data_ == b.data_; }
  friend bool operator!=(const value& a, const value& b) { return !(a == b); }

 private:
  template <class Int>
  static std::int64_t checked_integer(Int i) {
    if constexpr (std::is_unsigned_v<Int> && sizeof(Int) >= sizeof(std::int64_t)) {
      if (i > static_cast<Int>(std::numeric_limits<std::int64_t>::max())) {
        throw usage_error("integer " + std::to_string(i) + " is beyond the 64-bit signed range of a trellis::value");
      }
    }
    return static_cast<std::int64_t>(i);
  }
  std::variant<std::monostate, bool, std::int64_t, double, std::string, binary, array, map> data_;
};

/// The name of a kind ("nil", "bool", "int", "float", "str", "bin", "array", "map").
const char* to_string(value::kind k) noexcept;

/// Compact JSON text of a value. Binary prints as {"$bin": "<hex>"}; a NaN
/// or infinite double, which JSON cannot hold, as the string "NaN",
/// "Infinity" or "-Infinity".
std::string to_json(const value& v);

/// Parses JSON text into a value (integers stay integers). Errors name the
/// position; the code is `invalid_workflow`.
expected<value> value_from_json(std::string_view text);

namespace detail {

template <class T>
struct value_converter;  // specialised below for the supported C++ types

template <>
struct value_converter<value> {
  static bool fits(const value&) noexcept { return true; }
  static value get(const value& v) { return v; }
};
template <>
struct value_converter<bool> {
  static bool fits(const value& v) noexcept { return v.is_bool(); }
  static bool get(const value& v) { return v.as_bool(); }
};
template <>
struct value_converter<std::string> {
  static bool fits(const value& v) noexcept { return v.is_string(); }
  static std::string get(const value& v) { return v.as_string(); }
};
template <>
struct value_converter<double> {
  static bool fits(const value& v) noexcept { return v.is_number(); }
  static double get(const value& v) { return v.as_float(); }
};
template <>
struct value_converter<float> {
  static bool fits(const value& v) noexcept { return v.is_number(); }
  static float get(const value& v) { return static_cast<float>(v.as_float()); }
};
template <>
struct value_converter<binary> {
  static bool fits(const value& v) noexcept { return v.is_binary(); }
  static binary get(const value& v) { return v.as_binary(); }
};
template <>
struct value_converter<value::array> {
  static bool fits(const value& v) noexcept { return v.is_array(); }
  static value::array get(const value& v) { return v.as_array(); }
};
template <>
struct value_converter<value::map> {
  static bool fits(const value& v) noexcept { return v.is_map(); }
  static value::map get(const value& v) { return v.as_map(); }
};
template <class Int>
struct integer_converter {
  static bool fits(const value& v) noexcept {
    if (!v.is_integer()) {
      return false;
    }
    auto i = v.as_int();
    if constexpr (std::is_unsigned_v<Int>) {
      return i >= 0 && static_cast<std::uint64_t>(i) <= std::numeric_limits<Int>::max();
    } else {
      return i >= std::numeric_limits<Int>::min() && i <= std::numeric_limits<Int>::max();
    }
  }
  static Int get(const value& v) {
    if (!fits(v)) {
      throw usage_error("value " + to_json(v) + " does not fit the requested integer type");
    }
    return static_cast<Int>(v.as_int());
  }
};
template <>
struct value_converter<int> : integer_converter<int> {};
template <>
struct value_converter<long> : integer_converter<long> {};
template <>
struct value_converter<long long> : integer_converter<long long> {};
template <>
struct value_converter<unsigned> : integer_converter<unsigned> {};
template <>
struct value_converter<unsigned long> : integer_converter<unsigned long> {};
template <>
struct value_converter<unsigned long long> : integer_converter<unsigned long long> {};
template <>
struct value_converter<short> : integer_converter<short> {};

template <class T>
struct value_converter<std::vector<T>> {
  static bool fits(const value& v) noexcept {
    if (!v.is_array()) {
      return false;
    }
    for (const auto& x : v.as_array()) {
      if (!value_converter<T>::fits(x)) {
        return false;
      }
    }
    return true;
  }
  static std::vector<T> get(const value& v) {
    std::vector<T> out;
    out.reserve(v.as_array().size());
    for (const auto& x : v.as_array()) {
      out.push_back(value_converter<T>::get(x));
    }
    return out;
  }
};

}  // namespace detail

template <class T>
T value::as() const {
  using plain = std::decay_t<T>;
  if (!detail::value_converter<plain>::fits(*this)) {
    throw usage_error(std::string{"cannot convert "} + to_string(type()) + " value " + to_json(*this) +
                      " to the requested C++ type");
  }
  return detail::value_converter<plain>::get(*this);
}

template <class T>
bool value::is() const noexcept {
  return detail::value_converter<std::decay_t<T>>::fits(*this);
}

}  // namespace trellis
