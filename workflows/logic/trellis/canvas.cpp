#include "trellis/canvas.hpp"

#include "trellis/detail/canvas_fields.hpp"

#include "trellis/detail/value_codec.hpp"
#include "trellis/error.hpp"
#include "trellis/timestamp.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>

namespace trellis {

// -- signature ---------------------------------------------------------------

// The builder refuses what the workflow-file parser refuses (a negative or
// over-long duration, an over-long name), so every canvas that can be built
// can also be written out and read back. Such a value can only be a
// programming mistake, hence usage_error.
namespace {

void check_duration(const std::string& task, const char* what, std::chrono::milliseconds d, std::int64_t low) {
  if (d.count() < low || d.count() > max_duration_ms) {
    throw usage_error("signature '" + task + "': " + what + " must be from " + std::to_string(low) + " to " +
                      std::to_string(max_duration_ms) + " ms (ten years), got " + std::to_string(d.count()));
  }
}

void check_length(const std::string& task, const char* what, const std::string& text, std::size_t max_bytes) {
  if (text.empty() || text.size() > max_bytes) {
    throw usage_error("signature '" + task.substr(0, 60) + "': " + what + " must be 1 to " + std::to_string(max_bytes) +
                      " bytes, got " + std::to_string(text.size()));
  }
}

/// An error type listed in both filters of `p`, or "".
std::string in_both(const retry_policy& p) {
  for (const auto& type : p.retry_on) {
    for (const auto& other : p.dont_retry_on) {
      if (type == other) {
        return type;
      }
    }
  }
  return {};
}

}  // namespace

signature signature::immutable(bool yes) const {
  signature copy = *this;
  copy.options_.immutable = yes;
  return copy;
}

signature signature::retry(retry_policy policy) const {
  // Rejected here rather than at run time: a negative count or delay can only
  // be a programming mistake, and the workflow-file parser refuses the same.
  if (policy.max_retries < 0) {
    throw usage_error("signature '" + task_ + "': a retry policy needs max_retries >= 0");
  }
  check_duration(task_, "a retry's countdown", policy.countdown, 0);
  check_duration(task_, "a retry's backoff_max", policy.backoff_max, 0);
  for (const auto* types : {&policy.retry_on, &policy.dont_retry_on}) {
    for (const auto& type : *types) {
      check_length(task_, "an error type of a retry filter", type, max_name_bytes);
    }
  }
  if (auto both = in_both(policy); !both.empty()) {
    throw usage_error("signature '" + task_ + "': error type '" + both +
                      "' is in both retry_on and dont_retry_on; list it in one");
  }
  signature copy = *this;
  copy.options_.retry = policy;
  return copy;
}

signature signature::idempotency_key(std::string key) const {
  check_length(task_, "an idempotency key", key, max_idempotency_key_bytes);
  signature copy = *this;
  copy.options_.idempotency_key = std::move(key);
  return copy;
}

signature signature::queue(std::string name) const {
  check_length(task_, "a queue name", name, max_name_bytes);
  signature copy = *this;
  copy.options_.queue = std::move(name);
  return copy;
}

signature signature::countdown(std::chrono::milliseconds delay) const {
  check_duration(task_, "countdown", delay, 0);
  if (options_.eta) {
    throw usage_error("signature '" + task_ + "': countdown and eta exclude each other; give one");
  }
  signature copy = *this;
  copy.options_.countdown = delay;
  return copy;
}

signature signature::eta(std::chrono::system_clock::time_point when) const {
  if (options_.countdown) {
    throw usage_error("signature '" + task_ + "': eta and countdown exclude each other; give one");
  }
  signature copy = *this;
  copy.options_.eta = std::chrono::floor<std::chrono::milliseconds>(when);
  return copy;
}

signature signature::expires(std::chrono::milliseconds after) const {
  check_duration(task_, "expires", after, 0);
  signature copy = *this;
  copy.options_.expires = after;
  return copy;
}

signature signature::time_limit(std::chrono::milliseconds limit) const {
  check_duration(task_, "time_limit", limit, 1);
  signature copy = *this;
  copy.options_.time_limit = limit;
  return copy;
}

signature signature::soft_time_limit(std::chrono::milliseconds limit) const {
  check_duration(task_, "soft_time_limit", limit, 1);
  signature copy = *this;
  copy.options_.soft_time_limit = limit;
  return copy;
}

signature signature::rate_limit(std::string_view rate) const {
  auto parsed = parse_rate_limit(rate);
  if (!parsed) {
    throw usage_error("signature '" + task_ + "': rate_limit must be " + rate_limit_expectation + ", got \"" +
                      std::string{rate.substr(0, 60)} + "\"");
  }
  signature copy = *this;
  copy.options_.rate_limit = *parsed;
  return copy;
}

signature signature::priority(int level) const {
  if (level < 0 || level > 9) {
    throw usage_error("signature '" + task_ + "': priority must be from 0 to 9, got " + std::to_string(level));
  }
  signature copy = *this;
  copy.options_.priority = level;
  return copy;
}

signature signature::kwarg(std::string name, value v) const {
  signature copy = *this;
  copy.kwargs_[std::move(name)] = std::move(v);
  return copy;
}

// -- canvas ------------------------------------------------------------------

canvas::canvas(signature sig) : kind_(kind::task), sig_(std::make_shared<const signature>(std::move(sig))) {
  // The workflow-file parser refuses a nameless task too, so every canvas
  // that can be built can also be written out and read back.
  if (sig_->task().empty()) {
    throw usage_error("canvas: a signature needs a task name");
  }
  check_length(sig_->task(), "its task name", sig_->task(), max_name_bytes);
}

canvas::canvas(kind k, std::vector<canvas> children, std::shared_ptr<const canvas> body)
    : kind_(k), children_(std::move(children)), body_(std::move(body)) {}

const char* to_string(canvas::kind k) noexcept {
  switch (k) {
    case canvas::kind::task:
      return "task";
    case canvas::kind::chain:
      return "chain";
    case canvas::kind::group:
      return "group";
    case canvas::kind::chord:
      return "chord";
  }
  return "canvas";
}

namespace {

// A group that `map`, `starmap` or `chunks` built is one value (a list) to
// the rules below, as Celery's xmap is one task: it is not flattened into an
// outer group or chord header, not unrolled when it has one member, not
// dropped from a chain when empty, and not made a chord header. So is a
// composite with callbacks: they hang on it, so it must stay whole.
bool is_group(const canvas& c) noexcept {
  return c.type() == canvas::kind::group && c.fanout() == nullptr && !c.has_callbacks();
}

bool is_chain(const canvas& c) noexcept { return c.type() == canvas::kind::chain && !c.has_callbacks(); }

// A group's members with nested groups spliced in place: a group inside a
// group (or a chord header) runs its members in parallel with their siblings
// and contributes their results one by one, as Celery's `group._prepared`
// unrolls them.
std::vector<canvas> flatten_members(std::vector<canvas> members) {
  std::vector<canvas> out;
  out.reserve(members.size());
  for (auto& m : members) {
    if (is_group(m)) {
      // Already normalized, so its own members contain no group.
      for (const auto& inner : m.children()) {
        out.push_back(inner);
      }
    } else {
      out.push_back(std::move(m));
    }
  }
  return out;
}

// Appends one step to a chain under construction, splicing nested chains and
// unrolling one-member groups (Celery's `maybe_unroll_group`). The group ->
// chord upgrade happens afterwards, once the flat sequence is known.
void append_step(std::vector<canvas>& steps, const canvas& step) {
  if (is_chain(step)) {
    for (const auto& inner : step.children()) {
      append_step(steps, inner);
    }
    return;
  }
  if (is_group(step) && step.children().size() == 1) {
    append_step(steps, step.children().front());
    return;
  }
  steps.push_back(step);
}

}  // namespace

const signature& canvas::sig() const {
  if (kind_ != kind::task) {
    throw usage_error(std::string{"canvas::sig: a "} + to_string(kind_) + " has no signature");
  }
  return *sig_;
}

bool canvas::over_input() const noexcept {
  if (!fanout_ || !fanout_->is_map() || fanout_->as_map().size() != 1) {
    return false;
  }
  const auto& inner = fanout_->as_map().begin()->second;
  return inner.is_map() && inner.as_map().count("items") == 0;
}

const canvas& canvas::body() const {
  if (kind_ != kind::chord) {
    throw usage_error(std::string{"canvas::body: a "} + to_string(kind_) + " has no body");
  }
  return *body_;
}

std::size_t canvas::task_count() const noexcept {
  std::size_t n = kind_ == kind::task ? 1 : 0;
  for (const auto* callbacks : {&links_, &link_errors_}) {
    for (const auto& c : *callbacks) {
      n += c.task_count();
    }
  }
  if (kind_ == kind::task) {
    return n;
  }
  for (const auto& c : children_) {
    n += c.task_count();
  }
  if (kind_ == kind::chord) {
    n += body_->task_count();
  }
  return n;
}

const signature* first_prioritized_step(const canvas& c) {
  if (c.is_task() && c.sig().options().priority.value_or(0) > 0) {
    return &c.sig();
  }
  for (const auto& child : c.children()) {
    if (const auto* s = first_prioritized_step(child)) {
      return s;
    }
  }
  if (c.type() == canvas::kind::chord) {
    if (const auto* s = first_prioritized_step(c.body())) {
      return s;
    }
  }
  for (const auto* callbacks : {&c.links(), &c.link_errors()}) {
    for (const auto& cb : *callbacks) {
      if (const auto* s = first_prioritized_step(cb)) {
        return s;
      }
    }
  }
  return nullptr;
}

canvas chain(std::vector<canvas> steps) {
  if (steps.empty()) {
    throw usage_error("chain: a chain needs at least one step");
  }
  std::vector<canvas> flat;
  flat.reserve(steps.size());
  for (const auto& s : steps) {
    append_step(flat, s);
  }
  // An empty group that ends a chain contributes nothing and is dropped, so the
  // chain's result is the step before it (Celery skips it in `prepare_steps`,
  // test_empty_groups_are_skipped_in_chain).
  while (flat.size() > 1 && is_group(flat.back()) && flat.back().children().empty()) {
    flat.pop_back();
  }
  // Left to right, a group followed by a step becomes chord(group, step): the
  // step needs all the group's results, which is exactly a chord.
  std::vector<canvas> out;
  out.reserve(flat.size());
  for (auto& s : flat) {
    if (!out.empty() && is_group(out.back())) {
      canvas header = std::move(out.back());
      out.back() = chord(std::move(header), std::move(s));
    } else {
      out.push_back(std::move(s));
    }
  }
  if (out.size() == 1) {
    return std::move(out.front());
  }
  return canvas(canvas::kind::chain, std::move(out), nullptr);
}

canvas group(std::vector<canvas> members) {
  auto flat = flatten_members(std::move(members));
  // Celery's special case in `group.apply_async`: a group whose only member is
  // a chain ending in a group returns that inner group's result rather than a
  // list around it (test_group_results_in_chain), so the group is the chain.
  if (flat.size() == 1 && is_chain(flat.front()) && is_group(flat.front().children().back())) {
    return std::move(flat.front());
  }
  return canvas(canvas::kind::group, std::move(flat), nullptr);
}

canvas fanout_group(std::vector<canvas> members, value spec) {
  canvas c(canvas::kind::group, std::move(members), nullptr);
  c.fanout_ = std::make_shared<const value>(std::move(spec));
  return c;
}

canvas chord(std::vector<canvas> header, canvas body) {
  // The header is a group, so nested groups flatten into it; unlike group(),
  // no one-member special case applies (test_nested_chord_group_chain_group_tail).
  return canvas(canvas::kind::chord, flatten_members(std::move(header)),
                std::make_shared<const canvas>(std::move(body)));
}

canvas chord(canvas header, canvas body) {
  if (is_group(header)) {
    return chord(header.children(), std::move(body));
  }
  return chord(std::vector<canvas>{std::move(header)}, std::move(body));
}

// -- canvas_from_value -------------------------------------------------------

namespace detail {

error invalid(const std::string& path, const std::string& problem) {
  return error(errc::invalid_workflow, path + ": " + problem);
}

// A short rendering of an offending value: scalars as JSON, containers by kind.
std::string describe(const value& v) {
  if (v.is_array() || v.is_map() || v.is_binary()) {
    return to_string(v.type());
  }
  auto text = to_json(v);
  constexpr std::size_t max_len = 60;
  if (text.size() > max_len) {
    text = text.substr(0, max_len) + "...";
  }
  return text;
}

expected<const value::array*> array_at(const value& v, const std::string& path) {
  if (!v.is_array()) {
    return invalid(path, "must be an array, got " + describe(v));
  }
  return &v.as_array();
}

expected<const value::map*> map_at(const value& v, const std::string& path) {
  if (!v.is_map()) {
    return invalid(path, "must be a map, got " + describe(v));
  }
  return &v.as_map();
}

expected<std::string> text_at(const value& v, const std::string& path, std::size_t max_bytes) {
  if (!v.is_string() || v.as_string().empty()) {
    return invalid(path, "must be a non-empty string, got " + describe(v));
  }
  if (v.as_string().size() > max_bytes) {
    return invalid(path, "must be at most " + std::to_string(max_bytes) + " bytes, got " +
                             std::to_string(v.as_string().size()) + ": " + describe(v));
  }
  return v.as_string();
}

/// A task or queue name.
expected<std::string> name_at(const value& v, const std::string& path) { return text_at(v, path, max_name_bytes); }

expected<std::string> key_at(const value& v, const std::string& path) {
  return text_at(v, path, max_idempotency_key_bytes);
}

expected<bool> bool_at(const value& v, const std::string& path) {
  if (!v.is_bool()) {
    return invalid(path, "must be a bool, got " + describe(v));
  }
  return v.as_bool();
}

expected<std::int64_t> int_at(const value& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                              const char* expectation) {
  if (!v.is_integer() || v.as_int() < lo || v.as_int() > hi) {
    return invalid(path, std::string{"must be "} + expectation + ", got " + describe(v));
  }
  return v.as_int();
}

static_assert(max_duration_ms == 315360000000, "the messages below quote max_duration_ms");

expected<void> reject_unknown_keys(const value::map& m, const std::string& path,
                                   std::initializer_list<std::string_view> known) {
  for (const auto& entry : m) {
    bool ok = false;
    for (auto k : known) {
      ok = ok || entry.first == k;
    }
    if (!ok) {
      auto key = entry.first.size() > 60 ? entry.first.substr(0, 60) + "..." : entry.first;
      return invalid(path, "unknown key '" + key + "'");
    }
  }
  return {};
}

// Looks up `key` in `m`; when present, parses it with `parse` (which returns an
// expected) and hands the value to `store`. Keeps each option to one line.
// Callers list the fields in a braced list, which evaluates left to right, and
// report the first failure in that order.
template <class Parse, class Store>
expected<void> optional_field(const value::map& m, const char* key, const std::string& path, Parse parse, Store store) {
  auto it = m.find(key);
  if (it == m.end()) {
    return {};
  }
  auto parsed = parse(it->second, path + "." + key);
  if (!parsed) {
    return parsed.error();
  }
  store(std::move(*parsed));
  return {};
}

/// A duration in milliseconds: 0 to max_duration_ms.
expected<std::int64_t> duration_at(const value& v, const std::string& path) {
  return int_at(v, path, 0, max_duration_ms, "an integer from 0 to 315360000000 (ten years)");
}

/// "N/s", "N/m" or "N/h".
expected<rate_limit_spec> rate_at(const value& v, const std::string& path) {
  auto rate = v.is_string() ? parse_rate_limit(v.as_string()) : std::nullopt;
  if (!rate) {
    return invalid(path, std::string{"must be "} + rate_limit_expectation + ", got " + describe(v));
  }
  return *rate;
}

/// An RFC 3339 date-time with an offset, read to the millisecond.
expected<eta_time> eta_at(const value& v, const std::string& path) {
  auto ms = v.is_string() ? parse_rfc3339_ms(v.as_string()) : std::nullopt;
  if (!ms) {
    return invalid(path,
                   "must be an RFC 3339 date-time with an offset, like \"2026-12-06T10:00:00+01:00\" or "
                   "\"2026-12-06T09:00:00Z\", got " +
                       describe(v));
  }
  return eta_time{std::chrono::milliseconds{*ms}};
}

expected<backoff_kind> backoff_at(const value& v, const std::string& path) {
  if (v.is_string() && v.as_string() == "fixed") {
    return backoff_kind::fixed;
  }
  if (v.is_string() && v.as_string() == "exponential") {
    return backoff_kind::exponential;
  }
  return invalid(path, "must be \"fixed\" or \"exponential\", got " + describe(v));
}

/// A retry filter: an array of error types (non-empty names).
expected<std::vector<std::string>> error_types_at(const value& v, const std::string& path) {
  auto xs = array_at(v, path);
  if (!xs) {
    return xs.error();
  }
  std::vector<std::string> out;
  out.reserve((*xs)->size());
  for (std::size_t i = 0; i < (*xs)->size(); ++i) {
    auto type = name_at((**xs)[i], path + "[" + std::to_string(i) + "]");
    if (!type) {
      return type.error();
    }
    out.push_back(std::move(*type));
  }
  return out;
}

expected<retry_policy> retry_at(const value& v, const std::string& path) {
  auto m = map_at(v, path);
  if (!m) {
    return m.error();
  }
  if (auto ok = reject_unknown_keys(
          **m, path,
          {"max_retries", "countdown_ms", "backoff", "backoff_max_ms", "jitter", "retry_on", "dont_retry_on"});
      !ok) {
    return ok.error();
  }
  // Unspecified fields keep retry_policy's defaults.
  retry_policy p;
  auto max_retries = [](const value& x, const std::string& at) {
    return int_at(x, at, 0, std::numeric_limits<int>::max(), "an integer from 0 to 2147483647");
  };
  for (auto ok : {
           optional_field(**m, "max_retries", path, max_retries,
                          [&](std::int64_t n) { p.max_retries = static_cast<int>(n); }),
           optional_field(**m, "countdown_ms", path, duration_at,
                          [&](std::int64_t n) { p.countdown = std::chrono::milliseconds{n}; }),
           optional_field(**m, "backoff", path, backoff_at, [&](backoff_kind b) { p.backoff = b; }),
           optional_field(**m, "backoff_max_ms", path, duration_at,
                          [&](std::int64_t n) { p.backoff_max = std::chrono::milliseconds{n}; }),
           optional_field(**m, "jitter", path, bool_at, [&](bool b) { p.jitter = b; }),
           optional_field(**m, "retry_on", path, error_types_at,
                          [&](std::vector<std::string> types) { p.retry_on = std::move(types); }),
           optional_field(**m, "dont_retry_on", path, error_types_at,
                          [&](std::vector<std::string> types) { p.dont_retry_on = std::move(types); }),
       }) {
    if (!ok) {
      return ok.error();
    }
  }
  if (auto both = in_both(p); !both.empty()) {
    return invalid(path, "error type '" + both + "' is in both retry_on and dont_retry_on; list it in one");
  }
  return p;
}

expected<signature_options> options_at(const value& v, const std::string& path) {
  auto m = map_at(v, path);
  if (!m) {
    return m.error();
  }
  if (auto ok =
          reject_unknown_keys(**m, path,
                              {"immutable", "retry", "idempotency_key", "queue", "countdown_ms", "eta", "expires_ms",
                               "time_limit_ms", "soft_time_limit_ms", "rate_limit", "priority", "chunk"});
      !ok) {
    return ok.error();
  }
  signature_options o;
  auto positive = [](const value& x, const std::string& at) {
    return int_at(x, at, 1, max_duration_ms, "an integer from 1 to 315360000000 (ten years)");
  };
  auto priority = [](const value& x, const std::string& at) { return int_at(x, at, 0, 9, "an integer from 0 to 9"); };
  auto ms = [](std::int64_t n) { return std::chrono::milliseconds{n}; };
  for (auto ok : {
           optional_field(**m, "immutable", path, bool_at, [&](bool b) { o.immutable = b; }),
           optional_field(**m, "retry", path, retry_at, [&](retry_policy p) { o.retry = p; }),
           optional_field(**m, "idempotency_key", path, key_at,
                          [&](std::string s) { o.idempotency_key = std::move(s); }),
           optional_field(**m, "queue", path, name_at, [&](std::string s) { o.queue = std::move(s); }),
           optional_field(**m, "countdown_ms", path, duration_at, [&](std::int64_t n) { o.countdown = ms(n); }),
           optional_field(**m, "eta", path, eta_at, [&](eta_time t) { o.eta = t; }),
           optional_field(**m, "expires_ms", path, duration_at, [&](std::int64_t n) { o.expires = ms(n); }),
           optional_field(**m, "time_limit_ms", path, positive, [&](std::int64_t n) { o.time_limit = ms(n); }),
           optional_field(**m, "soft_time_limit_ms", path, positive,
                          [&](std::int64_t n) { o.soft_time_limit = ms(n); }),
           optional_field(**m, "rate_limit", path, rate_at, [&](rate_limit_spec r) { o.rate_limit = r; }),
           optional_field(**m, "priority", path, priority, [&](std::int64_t n) { o.priority = static_cast<int>(n); }),
           optional_field(**m, "chunk", path, bool_at, [&](bool b) { o.chunk = b; }),
       }) {
    if (!ok) {
      return ok.error();
    }
  }
  if (o.eta && o.countdown) {
    // Celery refuses both too: an absolute and a relative start cannot both hold.
    return invalid(path, "eta and countdown_ms exclude each other; give one");
  }
  return o;
}

}  // namespace detail

namespace {

using namespace detail;  // the field readers above, declared in detail/canvas_fields.hpp

constexpr std::string_view canvas_keys[] = {"task", "chain", "group", "chord", "map", "starmap", "chunks"};
const std::string canvas_key_list = "task, chain, group, chord, map, starmap, chunks";

// One parse of one document: counts tasks across the whole tree for max_tasks.
class canvas_parser {
 public:
  explicit canvas_parser(const canvas_limits& limits) : limits_(limits) {}

  expected<canvas> parse(const value& v, const std::string& path, std::size_t depth) {
    // Checked before descending, so hostile nesting cannot exhaust the stack.
    if (depth > limits_.max_depth) {
      return invalid(path, "canvas nesting exceeds max_depth (" + std::to_string(limits_.max_depth) + ")");
    }
    if (!v.is_map()) {
      return invalid(path, "expected an object with one of " + canvas_key_list + ", got " + describe(v));
    }
    const auto& m = v.as_map();
    std::vector<std::string_view> present;
    for (auto k : canvas_keys) {
      if (m.count(std::string{k}) != 0) {
        present.push_back(k);
      }
    }
    if (present.size() > 1) {
      return invalid(path, "expected exactly one of " + canvas_key_list + ", got both '" + std::string{present[0]} +
                               "' and '" + std::string{present[1]} + "'");
    }
    if (present.empty()) {
      if (m.empty()) {
        return invalid(path, "expected an object with one of " + canvas_key_list);
      }
      // Most likely a misspelt key: name it.
      return invalid(path, "unknown key '" + m.begin()->first + "'");
    }
    auto k = present.front();
    if (k == "task") {
      return with_callbacks(parse_signature(m, path), m, path, depth, false);
    }
    if (auto ok = reject_unknown_keys(m, path, {k, "options"}); !ok) {
      return ok.error();
    }
    return with_callbacks(parse_composite(m, k, path, depth), m, path, depth, true);
  }

 private:
  // A composite's `options` hold only callbacks; a signature's hold its
  // other options too, which parse_signature reads without them.
  expected<canvas> with_callbacks(expected<canvas> c, const value::map& m, const std::string& path, std::size_t depth,
                                  bool composite) {
    auto it = m.find("options");
    if (!c || it == m.end()) {
      return c;
    }
    return attach_callbacks(std::move(*c), it->second, path + ".options", composite,
                            [&](const value& v, const std::string& at) { return parse(v, at, depth + 1); });
  }

  expected<canvas> parse_composite(const value::map& m, std::string_view k, const std::string& path,
                                   std::size_t depth) {
    const auto& inner = m.at(std::string{k});
    auto inner_path = path + "." + std::string{k};
    if (k == "map" || k == "starmap" || k == "chunks") {
      // canvas_map.cpp: a group of tasks over the listed items.
      return parse_fanout(k, inner, inner_path, limits_, tasks_);
    }
    if (k == "chain" || k == "group") {
      auto xs = array_at(inner, inner_path);
      if (!xs) {
        return xs.error();
      }
      if (k == "chain" && (*xs)->empty()) {
        return invalid(inner_path, "must be a non-empty array");
      }
      auto members = parse_list(**xs, inner_path, depth);
      if (!members) {
        return members.error();
      }
      return k == "chain" ? chain(std::move(*members)) : group(std::move(*members));
    }
    return parse_chord(inner, inner_path, depth);
  }

  expected<std::vector<canvas>> parse_list(const value::array& xs, const std::string& path, std::size_t depth) {
    std::vector<canvas> out;
    out.reserve(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
      auto c = parse(xs[i], path + "[" + std::to_string(i) + "]", depth + 1);
      if (!c) {
        return c.error();
      }
      out.push_back(std::move(*c));
    }
    return out;
  }

  expected<canvas> parse_chord(const value& v, const std::string& path, std::size_t depth) {
    auto m = map_at(v, path);
    if (!m) {
      return m.error();
    }
    if (auto ok = reject_unknown_keys(**m, path, {"header", "body"}); !ok) {
      return ok.error();
    }
    auto header_it = (*m)->find("header");
    if (header_it == (*m)->end()) {
      return invalid(path, "missing key 'header'");
    }
    auto body_it = (*m)->find("body");
    if (body_it == (*m)->end()) {
      return invalid(path, "missing key 'body'");
    }
    auto xs = array_at(header_it->second, path + ".header");
    if (!xs) {
      return xs.error();
    }
    auto header = parse_list(**xs, path + ".header", depth);
    if (!header) {
      return header.error();
    }
    auto body = parse(body_it->second, path + ".body", depth + 1);
    if (!body) {
      return body.error();
    }
    return chord(std::move(*header), std::move(*body));
  }

  expected<canvas> parse_signature(const value::map& m, const std::string& path) {
    if (auto ok = reject_unknown_keys(m, path, {"task", "args", "kwargs", "options"}); !ok) {
      return ok.error();
    }
    if (++tasks_ > limits_.max_tasks) {
      return invalid(path, "the workflow has more than max_tasks (" + std::to_string(limits_.max_tasks) + ") tasks");
    }
    auto name = name_at(m.at("task"), path + ".task");
    if (!name) {
      return name.error();
    }
    value::array args;
    value::map kwargs;
    signature_options options;
    for (auto ok : {
             optional_field(m, "args", path, array_at, [&](const value::array* xs) { args = *xs; }),
             optional_field(m, "kwargs", path, map_at, [&](const value::map* xs) { kwargs = *xs; }),
             optional_field(m, "options", path, options_at_without_callbacks,
                            [&](signature_options o) { options = std::move(o); }),
         }) {
      if (!ok) {
        return ok.error();
      }
    }
    // Known here, so refused here rather than when the step's turn comes.
    if (auto bytes = detail::packed_size(args) + detail::packed_size(kwargs); bytes > limits_.max_argument_bytes) {
      return error{errc::payload_too_large,
                   path + ": the arguments of '" + *name + "' are " + std::to_string(bytes) +
                       " bytes encoded, beyond max_argument_bytes (" + std::to_string(limits_.max_argument_bytes) +
                       "); pass a reference to large data (a key, a path, a URL) or raise the limit"};
    }
    signature s(std::move(*name), std::move(args), std::move(kwargs));
    s.options() = std::move(options);
    return canvas(std::move(s));
  }

  canvas_limits limits_;
  std::size_t tasks_ = 0;
};

}  // namespace

std::size_t max_task_message_bytes(const canvas_limits& limits) {
  return limits.max_argument_bytes + defaults::envelope_room;
}

std::size_t max_outcome_message_bytes(const canvas_limits& limits) {
  return std::max(limits.max_result_bytes, max_task_message_bytes(limits)) + defaults::envelope_room;
}

expected<void> check_size_limits(const canvas_limits& limits) {
  for (auto [name, bytes] : {std::pair{"max_submission_bytes", limits.max_submission_bytes},
                             std::pair{"max_argument_bytes", limits.max_argument_bytes},
                             std::pair{"max_result_bytes", limits.max_result_bytes}}) {
    if (bytes == 0 || bytes > defaults::max_configurable_bytes) {
      return error{errc::invalid_config, std::string{name} + " must be from 1 to " +
                                             std::to_string(defaults::max_configurable_bytes) + " bytes, got " +
                                             std::to_string(bytes)};
    }
  }
  return {};
}

expected<canvas> canvas_from_value(const value& v, const canvas_limits& limits) {
  canvas_parser parser(limits);
  return parser.parse(v, "$", 1);
}

}  // namespace trellis
