#include "trellis/envelope.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <msgpack.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace trellis::detail {

namespace {

// Wire field names. Short keys keep a task message small; docs/wire-protocol.md
// lists the same table.
enum field : std::uint8_t {
  f_v,
  f_type,
  f_id,
  f_sent_at,
  f_trace,
  f_wf,
  f_node,
  f_attempt,
  f_task,
  f_queue,
  f_args,
  f_kwargs,
  f_options,
  f_status,
  f_result,
  f_error_type,
  f_error_message,
  f_duration_us,
  f_canvas,
  f_detail,
  f_done,
  f_total,
  f_message,
  f_state,
  field_count,
};

constexpr std::array<std::string_view, field_count> field_names = {
    "v",    "type",   "id",      "sent_at", "trace",  "wf",         "node",          "attempt",     "task",   "queue",
    "args", "kwargs", "options", "status",  "result", "error_type", "error_message", "duration_us", "canvas", "detail",
    "done", "total",  "message", "state",
};

constexpr std::uint32_t bit(field f) noexcept { return std::uint32_t{1} << f; }

constexpr std::uint32_t common_fields = bit(f_v) | bit(f_type) | bit(f_id) | bit(f_sent_at) | bit(f_trace);
constexpr std::uint32_t task_fields = common_fields | bit(f_wf) | bit(f_node) | bit(f_attempt) | bit(f_task) |
                                      bit(f_queue) | bit(f_args) | bit(f_kwargs) | bit(f_options);
constexpr std::uint32_t outcome_fields = common_fields | bit(f_wf) | bit(f_node) | bit(f_attempt) | bit(f_task) |
                                         bit(f_status) | bit(f_result) | bit(f_error_type) | bit(f_error_message) |
                                         bit(f_duration_us) | bit(f_detail);
constexpr std::uint32_t submit_fields = common_fields | bit(f_wf) | bit(f_canvas) | bit(f_options);
// Each part of a progress report is left out when empty.
constexpr std::uint32_t progress_optional = bit(f_done) | bit(f_total) | bit(f_message) | bit(f_state);
constexpr std::uint32_t progress_fields =
    common_fields | bit(f_wf) | bit(f_node) | bit(f_attempt) | bit(f_task) | progress_optional;
// A replacement is an outcome whose result is a canvas to run in its place.
constexpr std::uint32_t replace_fields =
    common_fields | bit(f_wf) | bit(f_node) | bit(f_attempt) | bit(f_task) | bit(f_canvas) | bit(f_duration_us);
// Which of the outcome fields depend on the status.
constexpr std::uint32_t success_only = bit(f_result);
constexpr std::uint32_t failure_only = bit(f_error_type) | bit(f_error_message);
// Optional on the other statuses only: a retry's countdown (int, ms) or a
// rejected message's original bytes (bin).
constexpr std::uint32_t failure_optional = bit(f_detail);

std::uint32_t allowed_fields(envelope_type t) noexcept {
  switch (t) {
    case envelope_type::task:
      return task_fields;
    case envelope_type::outcome:
      return outcome_fields;
    case envelope_type::submit:
      return submit_fields;
    case envelope_type::progress:
      return progress_fields;
    case envelope_type::replace:
      return replace_fields;
  }
  return common_fields;
}

std::uint32_t required_fields(envelope_type t) noexcept {
  auto required = allowed_fields(t) & ~bit(f_trace);
  if (t == envelope_type::outcome) {
    required &= ~(success_only | failure_only | failure_optional);
  }
  if (t == envelope_type::progress) {
    required &= ~progress_optional;
  }
  return required;
}

int field_index(std::string_view name) noexcept {
  for (std::size_t i = 0; i < field_names.size(); ++i) {
    if (field_names[i] == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

// A name from the wire, fit for an error message: bounded in length and with
// unprintable bytes escaped, since it may be arbitrary garbage.
std::string quoted(std::string_view s) {
  constexpr std::size_t max_shown = 64;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0x0f];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_shown) {
    out += "...";
  }
  out += '\'';
  return out;
}

std::string_view str_of(const msgpack::object& o) noexcept { return {o.via.str.ptr, o.via.str.size}; }

error malformed(std::string message) { return error{errc::malformed_envelope, std::move(message)}; }

error wrong_type(field f, const char* expected, const msgpack::object& o) {
  return malformed("field '" + std::string{field_names[f]} + "' must be " + expected + ", got " + kind_name(o.type));
}

// The wire spellings of the two enums, indexed by enumerator: one table serves
// both `to_string` and decoding, so the two can never disagree.
constexpr std::array<std::string_view, 5> type_names = {"task", "outcome", "submit", "progress", "replace"};
constexpr std::array<std::string_view, 4> status_names = {"success", "failure", "retry", "rejected"};
static_assert(static_cast<std::size_t>(envelope_type::replace) + 1 == type_names.size(),
              "type_names lists every envelope_type");
static_assert(static_cast<std::size_t>(outcome_status::rejected) + 1 == status_names.size(),
              "status_names lists every outcome_status");

/// The enumerator spelled `s` on the wire, if any.
template <class Enum, std::size_t N>
std::optional<Enum> parse_name(const std::array<std::string_view, N>& names, std::string_view s) noexcept {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == s) {
      return static_cast<Enum>(i);
    }
  }
  return std::nullopt;
}

/// The wire spelling of `e`, or "unknown" for a value outside the enum.
template <class Enum, std::size_t N>
const char* name_of(const std::array<std::string_view, N>& names, Enum e) noexcept {
  auto i = static_cast<std::size_t>(e);
  // The table holds string literals, so `data()` is NUL-terminated.
  return i < N ? names[i].data() : "unknown";
}

/// Reads the fields of one envelope map; every reader returns the error for
/// its field or nothing.
class field_reader {
 public:
  field_reader(const std::array<const msgpack::object*, field_count>& slots, std::size_t max_depth)
      : slots_(slots), max_depth_(max_depth) {}

  std::optional<error> string(field f, std::string& out) const {
    const auto& o = *slots_[f];
    if (o.type != msgpack::type::STR) {
      return wrong_type(f, "str", o);
    }
    out.assign(o.via.str.ptr, o.via.str.size);
    return std::nullopt;
  }

  std::optional<error> int64(field f, std::int64_t& out) const {
    const auto& o = *slots_[f];
    if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      out = o.via.i64;
      return std::nullopt;
    }
    if (o.type != msgpack::type::POSITIVE_INTEGER) {
      return wrong_type(f, "int", o);
    }
    if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return out_of_range(f, std::to_string(o.via.u64));
    }
    out = static_cast<std::int64_t>(o.via.u64);
    return std::nullopt;
  }

  std::optional<error> int32(field f, std::int32_t& out) const {
    std::int64_t wide = 0;
    if (auto err = int64(f, wide)) {
      return err;
    }
    if (wide < std::numeric_limits<std::int32_t>::min() || wide > std::numeric_limits<std::int32_t>::max()) {
      return out_of_range(f, std::to_string(wide));
    }
    out = static_cast<std::int32_t>(wide);
    return std::nullopt;
  }

  /// Any value; `shape` narrows it to array or map when not nil.
  std::optional<error> any(field f, value& out, msgpack::type::object_type shape = msgpack::type::NIL) const {
    const auto& o = *slots_[f];
    if (shape == msgpack::type::ARRAY && o.type != msgpack::type::ARRAY) {
      return wrong_type(f, "array", o);
    }
    if (shape == msgpack::type::MAP && o.type != msgpack::type::MAP) {
      return wrong_type(f, "map", o);
    }
    auto v = value_from_msgpack(o, max_depth_);
    if (!v) {
      // Keep the code (malformed vs. too large) and say where it happened.
      return error{v.error().code(), "field '" + std::string{field_names[f]} + "': " + v.error().message()};
    }
    out = std::move(*v);
    return std::nullopt;
  }

  std::optional<error> array(field f, value::array& out) const {
    value v;
    if (auto err = any(f, v, msgpack::type::ARRAY)) {
      return err;
    }
    out = std::move(v.as_array());
    return std::nullopt;
  }

  std::optional<error> map(field f, value::map& out) const {
    value v;
    if (auto err = any(f, v, msgpack::type::MAP)) {
      return err;
    }
    out = std::move(v.as_map());
    return std::nullopt;
  }

 private:
  static error out_of_range(field f, const std::string& shown) {
    return malformed("field '" + std::string{field_names[f]} + "' is out of range: " + shown);
  }

  const std::array<const msgpack::object*, field_count>& slots_;
  std::size_t max_depth_;
};

std::size_t size_estimate(const envelope& e) noexcept {
  // Fixed keys and headers, the strings, and a guess for the values; the
  // string grows if the guess is short, so this only saves reallocations.
  return 96 + e.id.size() + e.workflow_id.size() + e.task.size() + e.queue.size() + e.trace.size() +
         e.error_type.size() + e.error_message.size() + 16 * (e.args.size() + e.kwargs.size() + e.options.size());
}

void pack_key(msgpack::packer<string_sink>& pk, field f) {
  auto name = field_names[f];
  pk.pack_str(static_cast<std::uint32_t>(name.size()));
  pk.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
}

/// The parts of a progress report, each optional, in wire order, checked
/// as `task_context` checks them: counts not negative, the message within
/// its bound (writers cut it), a custom state name a handler may set.
std::optional<error> read_progress(const field_reader& read, const std::array<const msgpack::object*, field_count>& slots,
                                   task_progress& out) {
  for (auto f : {f_done, f_total}) {
    if (slots[f] == nullptr) {
      continue;
    }
    std::int64_t n = 0;
    if (auto err = read.int64(f, n)) {
      return err;
    }
    if (n < 0) {
      return malformed("field '" + std::string{field_names[f]} + "' is out of range: " + std::to_string(n));
    }
    (f == f_done ? out.done : out.total) = n;
  }
  if (slots[f_message] != nullptr) {
    if (auto err = read.string(f_message, out.message)) {
      return err;
    }
    if (out.message.size() > defaults::max_progress_message_bytes) {
      return malformed("field 'message' is " + std::to_string(out.message.size()) + " bytes long; at most " +
                       std::to_string(defaults::max_progress_message_bytes) + " are allowed");
    }
  }
  if (slots[f_state] != nullptr) {
    if (auto err = read.string(f_state, out.state)) {
      return err;
    }
    if (auto problem = custom_state_problem(out.state)) {
      return malformed("field 'state': " + *problem);
    }
  }
  return std::nullopt;
}

expected<envelope> decode_map(const msgpack::object_map& m, const envelope_limits& limits) {
  // The version comes first, before anything else is interpreted, so a newer
  // envelope whose fields this build does not know still reads as
  // "unsupported version" rather than as a pile of field errors.
  const msgpack::object* version = nullptr;
  const msgpack::object* type = nullptr;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const auto& kv = m.ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      continue;
    }
    auto name = str_of(kv.key);
    const msgpack::object** slot = name == "v" ? &version : name == "type" ? &type : nullptr;
    if (slot == nullptr) {
      continue;
    }
    if (*slot != nullptr) {
      return malformed("duplicate field '" + std::string{name} + "'");
    }
    *slot = &kv.val;
  }
  if (version == nullptr) {
    return malformed("missing field 'v'");
  }
  std::string version_text;
  if (version->type == msgpack::type::POSITIVE_INTEGER) {
    if (version->via.u64 != static_cast<std::uint64_t>(envelope_version)) {
      version_text = std::to_string(version->via.u64);
    }
  } else if (version->type == msgpack::type::NEGATIVE_INTEGER) {
    version_text = std::to_string(version->via.i64);
  } else {
    return wrong_type(f_v, "int", *version);
  }
  if (!version_text.empty()) {
    return error{errc::unsupported_version, "envelope version " + version_text +
                                                " is not supported (this build reads version " +
                                                std::to_string(envelope_version) + ")"};
  }

  envelope e;
  if (type == nullptr) {
    return malformed("missing field 'type'");
  }
  if (type->type != msgpack::type::STR) {
    return wrong_type(f_type, "str", *type);
  }
  if (auto t = parse_name<envelope_type>(type_names, str_of(*type))) {
    e.type = *t;
  } else {
    return malformed("unknown envelope type " + quoted(str_of(*type)));
  }

  std::array<const msgpack::object*, field_count> slots{};
  std::uint32_t seen = 0;
  const std::uint32_t allowed = allowed_fields(e.type);
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const auto& kv = m.ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      return malformed(std::string{"field names must be str, got "} + kind_name(kv.key.type));
    }
    auto name = str_of(kv.key);
    int index = field_index(name);
    if (index < 0 || (allowed & bit(static_cast<field>(index))) == 0) {
      return malformed("unknown field " + quoted(name) + (e.type == envelope_type::outcome ? " in an " : " in a ") +
                       to_string(e.type) + " envelope");
    }
    auto f = static_cast<field>(index);
    if ((seen & bit(f)) != 0) {
      return malformed("duplicate field '" + std::string{name} + "'");
    }
    seen |= bit(f);
    slots[f] = &kv.val;
  }
  const std::uint32_t missing = required_fields(e.type) & ~seen;
  for (std::size_t i = 0; i < field_count; ++i) {
    if ((missing & bit(static_cast<field>(i))) != 0) {
      return malformed("missing field '" + std::string{field_names[i]} + "'");
    }
  }

  field_reader read{slots, limits.max_depth};
  std::optional<error> err;
  auto failed = [&](std::optional<error> result) {
    err = std::move(result);
    return err.has_value();
  };
  if (failed(read.string(f_id, e.id)) || failed(read.int64(f_sent_at, e.sent_at))) {
    return std::move(*err);
  }
  if (slots[f_trace] != nullptr && failed(read.string(f_trace, e.trace))) {
    return std::move(*err);
  }
  // Every type names its workflow; tasks and outcomes also name the node, the
  // attempt and the task, in this order before their own fields.
  if (failed(read.string(f_wf, e.workflow_id))) {
    return std::move(*err);
  }
  if (e.type != envelope_type::submit &&
      (failed(read.int32(f_node, e.node)) || failed(read.int32(f_attempt, e.attempt)) ||
       failed(read.string(f_task, e.task)))) {
    return std::move(*err);
  }
  switch (e.type) {
    case envelope_type::task:
      if (failed(read.string(f_queue, e.queue)) || failed(read.array(f_args, e.args)) ||
          failed(read.map(f_kwargs, e.kwargs)) || failed(read.map(f_options, e.options))) {
        return std::move(*err);
      }
      break;
    case envelope_type::outcome: {
      if (failed(read.int64(f_duration_us, e.duration_us))) {
        return std::move(*err);
      }
      const auto& status = *slots[f_status];
      if (status.type != msgpack::type::STR) {
        return wrong_type(f_status, "str", status);
      }
      if (auto s = parse_name<outcome_status>(status_names, str_of(status))) {
        e.status = *s;
      } else {
        return malformed("unknown outcome status " + quoted(str_of(status)));
      }
      // A success carries a result and nothing else; the other statuses carry
      // an error and no result. Accepting both would let a re-encode silently
      // drop one, so the rule is enforced here.
      const bool success = e.status == outcome_status::success;
      const std::uint32_t needed = success ? success_only : failure_only;
      const std::uint32_t refused = success ? (failure_only | failure_optional) : success_only;
      for (std::size_t i = 0; i < field_count; ++i) {
        auto f = static_cast<field>(i);
        if ((needed & bit(f)) != 0 && (seen & bit(f)) == 0) {
          return malformed("missing field '" + std::string{field_names[f]} + "' in a " + to_string(e.status) +
                           " outcome");
        }
        if ((refused & bit(f)) != 0 && (seen & bit(f)) != 0) {
          return malformed("unexpected field '" + std::string{field_names[f]} + "' in a " + to_string(e.status) +
                           " outcome");
        }
      }
      if (success) {
        if (failed(read.any(f_result, e.payload))) {
          return std::move(*err);
        }
      } else if (failed(read.string(f_error_type, e.error_type)) ||
                 failed(read.string(f_error_message, e.error_message)) ||
                 ((seen & bit(f_detail)) != 0 && failed(read.any(f_detail, e.payload)))) {
        return std::move(*err);
      }
      break;
    }
    case envelope_type::submit:
      if (failed(read.any(f_canvas, e.payload)) || failed(read.map(f_options, e.options))) {
        return std::move(*err);
      }
      break;
    case envelope_type::progress:
      if (failed(read_progress(read, slots, e.progress))) {
        return std::move(*err);
      }
      break;
    case envelope_type::replace:
      // The canvas is any value here; the dispatcher parses it strictly.
      if (failed(read.any(f_canvas, e.payload)) || failed(read.int64(f_duration_us, e.duration_us))) {
        return std::move(*err);
      }
      break;
  }
  return e;
}

}  // namespace

const char* to_string(envelope_type t) noexcept { return name_of(type_names, t); }

const char* to_string(outcome_status s) noexcept { return name_of(status_names, s); }

std::string encode(const envelope& e) {
  std::string out;
  string_sink sink{out, size_estimate(e)};
  msgpack::packer<string_sink> pk{sink};

  std::uint32_t count = 4 + (e.trace.empty() ? 0 : 1);
  switch (e.type) {
    case envelope_type::task:
      count += 8;
      break;
    case envelope_type::outcome:
      count += e.status == outcome_status::success ? 7 : (e.payload.is_nil() ? 8 : 9);
      break;
    case envelope_type::submit:
      count += 3;
      break;
    case envelope_type::progress:
      count += 4 + (e.progress.done ? 1 : 0) + (e.progress.total ? 1 : 0) + (e.progress.message.empty() ? 0 : 1) +
               (e.progress.state.empty() ? 0 : 1);
      break;
    case envelope_type::replace:
      count += 6;
      break;
  }
  pk.pack_map(count);
  pack_key(pk, f_v);
  pk.pack_int64(e.v);
  pack_key(pk, f_type);
  pack_string(pk, to_string(e.type));
  pack_key(pk, f_id);
  pack_string(pk, e.id);
  pack_key(pk, f_sent_at);
  pk.pack_int64(e.sent_at);
  if (!e.trace.empty()) {
    pack_key(pk, f_trace);
    pack_string(pk, e.trace);
  }
  // Wire order: the workflow, then for tasks and outcomes the node, the
  // attempt and the task, then each type's own fields.
  pack_key(pk, f_wf);
  pack_string(pk, e.workflow_id);
  if (e.type != envelope_type::submit) {
    pack_key(pk, f_node);
    pk.pack_int32(e.node);
    pack_key(pk, f_attempt);
    pk.pack_int32(e.attempt);
    pack_key(pk, f_task);
    pack_string(pk, e.task);
  }
  switch (e.type) {
    case envelope_type::task:
      pack_key(pk, f_queue);
      pack_string(pk, e.queue);
      pack_key(pk, f_args);
      pack_array(pk, e.args);
      pack_key(pk, f_kwargs);
      pack_map(pk, e.kwargs);
      pack_key(pk, f_options);
      pack_map(pk, e.options);
      break;
    case envelope_type::outcome:
      pack_key(pk, f_status);
      pack_string(pk, to_string(e.status));
      if (e.status == outcome_status::success) {
        pack_key(pk, f_result);
        pack_value(pk, e.payload);
      } else {
        pack_key(pk, f_error_type);
        pack_string(pk, e.error_type);
        pack_key(pk, f_error_message);
        pack_string(pk, e.error_message);
        if (!e.payload.is_nil()) {
          pack_key(pk, f_detail);
          pack_value(pk, e.payload);
        }
      }
      pack_key(pk, f_duration_us);
      pk.pack_int64(e.duration_us);
      break;
    case envelope_type::submit:
      pack_key(pk, f_canvas);
      pack_value(pk, e.payload);
      pack_key(pk, f_options);
      pack_map(pk, e.options);
      break;
    case envelope_type::progress:
      if (e.progress.done) {
        pack_key(pk, f_done);
        pk.pack_int64(*e.progress.done);
      }
      if (e.progress.total) {
        pack_key(pk, f_total);
        pk.pack_int64(*e.progress.total);
      }
      if (!e.progress.message.empty()) {
        pack_key(pk, f_message);
        pack_string(pk, e.progress.message);
      }
      if (!e.progress.state.empty()) {
        pack_key(pk, f_state);
        pack_string(pk, e.progress.state);
      }
      break;
    case envelope_type::replace:
      pack_key(pk, f_canvas);
      pack_value(pk, e.payload);
      pack_key(pk, f_duration_us);
      pk.pack_int64(e.duration_us);
      break;
  }
  sink.finish();
  return out;
}

expected<envelope> decode(std::string_view bytes, const envelope_limits& limits) {
  // Size first, before a single byte is parsed.
  if (bytes.size() > limits.max_bytes) {
    return error{errc::payload_too_large, "envelope of " + std::to_string(bytes.size()) +
                                              " bytes exceeds the limit of " + std::to_string(limits.max_bytes) +
                                              " bytes"};
  }
  if (bytes.empty() ||
      !(static_cast<unsigned char>(bytes[0]) >> 4 == 0x8 || static_cast<unsigned char>(bytes[0]) == 0xde ||
        static_cast<unsigned char>(bytes[0]) == 0xdf)) {
    return malformed("not a msgpack map: the message does not start with a map header");
  }
  // The envelope map is one level; its values get the full depth limit.
  const std::size_t depth =
      limits.max_depth < std::numeric_limits<std::size_t>::max() ? limits.max_depth + 1 : limits.max_depth;
  if (auto checked = check_msgpack(bytes, depth); !checked) {
    if (checked.error().code() == errc::payload_too_large) {
      return error{errc::payload_too_large,
                   "value nesting deeper than " + std::to_string(limits.max_depth) + " levels in the envelope"};
    }
    return malformed("not a msgpack map: " + checked.error().message());
  }
  auto handle = unpack_checked(bytes, depth);
  if (!handle) {
    return handle.error();
  }
  // The structure check proved the first byte is a map header, so this holds;
  // it is checked anyway because the unpacker is a separate parser.
  const msgpack::object& root = handle->get();
  if (root.type != msgpack::type::MAP) {
    return malformed(std::string{"not a msgpack map: got "} + kind_name(root.type));
  }
  return decode_map(root.via.map, limits);
}

}  // namespace trellis::detail
