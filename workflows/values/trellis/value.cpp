#include "trellis/value.hpp"

#include "trellis/detail/json_text.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>

namespace trellis {

namespace {

/// Nesting limit for JSON input. It matches the default envelope depth limit,
/// so a value read from a file can always travel in an envelope, and it keeps
/// the recursive printers and packers far from the stack's end.
constexpr std::size_t json_max_depth = 64;

[[noreturn]] void throw_kind_mismatch(const char* expected, value::kind actual) {
  throw usage_error(std::string{"expected "} + expected + ", got " + to_string(actual));
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there
// are not one (stray continuation byte, overlong form, surrogate, > U+10FFFF).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = byte(i);
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    if (lead == 0xe0) {
      lo = 0xa0;
    } else if (lead == 0xed) {
      hi = 0x9f;
    }
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    if (lead == 0xf0) {
      lo = 0x90;
    } else if (lead == 0xf4) {
      hi = 0x8f;
    }
  } else {
    return 0;
  }
  if (s.size() - i < len) {
    return 0;
  }
  // Only the second byte has a narrowed range; the rest are plain continuations.
  if (byte(i + 1) < lo || byte(i + 1) > hi) {
    return 0;
  }
  for (std::size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) {
      return 0;
    }
  }
  return len;
}

constexpr char hex_digits[] = "0123456789abcdef";

void append_json_double(std::string& out, double d) {
  // JSON has no NaN or infinity. null would read as "no result", so they
  // are spelled as the strings Python's and JavaScript's parsers know.
  if (std::isnan(d)) {
    out += "\"NaN\"";
    return;
  }
  if (std::isinf(d)) {
    out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    return;
  }
  char buf[32];
  // Shortest text that parses back to the same double.
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  std::string_view text{buf, static_cast<std::size_t>(res.ptr - buf)};
  out += text;
  // "1" would read back as an integer; keep the value a double.
  if (text.find_first_of(".e") == std::string_view::npos) {
    out += ".0";
  }
}

void append_json(std::string& out, const value& v) {
  switch (v.type()) {
    case value::kind::nil:
      out += "null";
      return;
    case value::kind::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case value::kind::integer: {
      char buf[24];
      auto res = std::to_chars(buf, buf + sizeof(buf), v.as_int());
      out.append(buf, res.ptr);
      return;
    }
    case value::kind::floating:
      append_json_double(out, v.as_float());
      return;
    case value::kind::string:
      detail::append_json_string(out, v.as_string());
      return;
    case value::kind::binary: {
      out += "{\"$bin\":\"";
      for (auto b : v.as_binary().bytes) {
        out += hex_digits[b >> 4];
        out += hex_digits[b & 0x0f];
      }
      out += "\"}";
      return;
    }
    case value::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v.as_array()) {
        if (!first) {
          out += ',';
        }
        first = false;
        append_json(out, x);
      }
      out += ']';
      return;
    }
    case value::kind::map: {
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.as_map()) {
        if (!first) {
          out += ',';
        }
        first = false;
        detail::append_json_string(out, k);
        out += ':';
        append_json(out, x);
      }
      out += '}';
      return;
    }
  }
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// The inverse of the {"$bin": "<hex>"} form to_json prints; anything else
// (odd length, non-hex text) stays an ordinary map.
std::optional<binary> binary_from_marker(const value::map& m) {
  if (m.size() != 1) {
    return std::nullopt;
  }
  auto it = m.find("$bin");
  if (it == m.end() || !it->second.is_string()) {
    return std::nullopt;
  }
  const auto& hex = it->second.as_string();
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  binary out;
  out.bytes.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]);
    int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.bytes.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

/// Builds a value straight from nlohmann's SAX events: no intermediate DOM,
/// an explicit stack instead of recursion, and a depth limit.
class json_value_builder {
 public:
  using json = nlohmann::json;

  bool null() { return add(value{}); }
  bool boolean(bool b) { return add(value{b}); }
  bool number_integer(json::number_integer_t i) { return add(value{static_cast<std::int64_t>(i)}); }
  bool number_unsigned(json::number_unsigned_t u) {
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return fail("integer " + std::to_string(u) + " is above the largest 64-bit signed integer");
    }
    return add(value{static_cast<std::int64_t>(u)});
  }
  bool number_float(json::number_float_t d, const json::string_t& text) {
    // nlohmann hands integer literals that overflow 64 bits to us as doubles.
    if (text.find_first_of(".eE") == std::string::npos) {
      return fail("integer " + text + " is outside the 64-bit signed range");
    }
    if (!std::isfinite(d)) {
      return fail("number " + text + " is outside the range of a double");
    }
    return add(value{static_cast<double>(d)});
  }
  bool string(json::string_t& s) { return add(value{std::move(s)}); }
  bool binary(json::binary_t&) { return fail("binary JSON values are not supported"); }
  bool start_object(std::size_t) { return open(value{value::map{}}); }
  bool key(json::string_t& k) {
    auto& top = stack_.back();
    if (top.v.as_map().count(k) != 0) {
      return fail("duplicate key " + quoted(k));
    }
    top.key = std::move(k);
    return true;
  }
  bool end_object() {
    auto done = std::move(stack_.back().v);
    stack_.pop_back();
    if (auto bin = binary_from_marker(done.as_map())) {
      return add(value{std::move(*bin)});
    }
    return add(std::move(done));
  }
  bool start_array(std::size_t) { return open(value{value::array{}}); }
  bool end_array() {
    auto done = std::move(stack_.back().v);
    stack_.pop_back();
    return add(std::move(done));
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& ex) {
    // what() reads "[json.exception.parse_error.101] parse error at line 1,
    // column 5: ..."; the bracketed id means nothing to a user.
    std::string_view what = ex.what();
    auto close = what.find("] ");
    if (close != std::string_view::npos) {
      what.remove_prefix(close + 2);
    }
    error_ = error{errc::invalid_workflow, "invalid JSON: " + std::string{what}};
    return false;
  }

  /// `root` receives the parsed value and must outlive the builder.
  explicit json_value_builder(value& root) : root_(root) {}

  /// The first error, if parsing failed.
  std::optional<error>& failure() { return error_; }

 private:
  struct frame {
    value v;
    std::string key;
  };

  bool open(value container) {
    if (stack_.size() >= json_max_depth) {
      return fail("nesting deeper than " + std::to_string(json_max_depth) + " levels");
    }
    stack_.push_back(frame{std::move(container), {}});
    return true;
  }

  bool add(value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    auto& top = stack_.back();
    if (top.v.is_array()) {
      top.v.as_array().push_back(std::move(v));
    } else {
      top.v.as_map().emplace(std::move(top.key), std::move(v));
      top.key.clear();
    }
    return true;
  }

  // The location as a path from the root ("$.chain[2].args"), so a user can
  // find the problem in a file without counting columns.
  std::string path() const {
    std::string out = "$";
    for (std::size_t i = 0; i < stack_.size(); ++i) {
      const auto& f = stack_[i];
      if (f.v.is_array()) {
        out += '[' + std::to_string(f.v.as_array().size()) + ']';
      } else if (!f.key.empty()) {
        out += '.' + f.key;
      }
    }
    return out;
  }

  static std::string quoted(const std::string& s) {
    std::string out;
    detail::append_json_string(out, s);
    return out;
  }

  bool fail(const std::string& problem) {
    error_ = error{errc::invalid_workflow, "invalid JSON: " + problem + " at " + path()};
    return false;
  }

  std::vector<frame> stack_;
  value& root_;
  std::optional<error> error_;
};

}  // namespace

// Strings are bytes on the wire; JSON output must be valid UTF-8, so bytes that
// are not UTF-8 print as U+FFFD rather than producing unparseable text.
void detail::append_json_string(std::string& out, std::string_view s) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t len = utf8_sequence_length(s, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex_digits[c >> 4];
          out += hex_digits[c & 0x0f];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}


bool value::as_bool() const {
  if (auto* p = std::get_if<bool>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("bool", type());
}

std::int64_t value::as_int() const {
  if (auto* p = std::get_if<std::int64_t>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("int", type());
}

double value::as_float() const {
  if (auto* p = std::get_if<double>(&data_)) {
    return *p;
  }
  if (auto* p = std::get_if<std::int64_t>(&data_)) {
    return static_cast<double>(*p);
  }
  throw_kind_mismatch("float or int", type());
}

const std::string& value::as_string() const& {
  if (auto* p = std::get_if<std::string>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("str", type());
}

const binary& value::as_binary() const& {
  if (auto* p = std::get_if<binary>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("bin", type());
}

const value::array& value::as_array() const& {
  if (auto* p = std::get_if<array>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("array", type());
}

value::array& value::as_array() & {
  if (auto* p = std::get_if<array>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("array", type());
}

const value::map& value::as_map() const& {
  if (auto* p = std::get_if<map>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("map", type());
}

value::map& value::as_map() & {
  if (auto* p = std::get_if<map>(&data_)) {
    return *p;
  }
  throw_kind_mismatch("map", type());
}

// Rvalue overloads move out of a temporary instead of handing out a
// reference into it: `h.error_details().as_map()` would otherwise dangle.
std::string value::as_string() && { return std::move(const_cast<std::string&>(as_string())); }
binary value::as_binary() && { return std::move(const_cast<binary&>(as_binary())); }
value::array value::as_array() && { return std::move(as_array()); }
value::map value::as_map() && { return std::move(as_map()); }

const char* to_string(value::kind k) noexcept {
  switch (k) {
    case value::kind::nil:
      return "nil";
    case value::kind::boolean:
      return "bool";
    case value::kind::integer:
      return "int";
    case value::kind::floating:
      return "float";
    case value::kind::string:
      return "str";
    case value::kind::binary:
      return "bin";
    case value::kind::array:
      return "array";
    case value::kind::map:
      return "map";
  }
  return "unknown";
}

std::string to_json(const value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

expected<value> value_from_json(std::string_view text) {
  // Built in the result's own storage: no value is moved into it afterwards.
  expected<value> out{value{}};
  json_value_builder builder{*out};
  try {
    nlohmann::json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const nlohmann::json::exception& ex) {
    // sax_parse reports syntax errors through the builder; this is only for
    // anything else the library decides to throw.
    return error{errc::invalid_workflow, std::string{"invalid JSON: "} + ex.what()};
  }
  if (auto& failure = builder.failure()) {
    return std::move(*failure);
  }
  return out;
}

}  // namespace trellis
