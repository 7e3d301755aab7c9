#include "trellis/lifecycle_events.hpp"

#include "trellis/detail/value_codec.hpp"

#include <array>
#include <climits>
#include <utility>

namespace trellis::detail {

namespace {

constexpr std::array<lifecycle_kind, 7> all_kinds = {
    lifecycle_kind::submitted, lifecycle_kind::started,       lifecycle_kind::retried, lifecycle_kind::succeeded,
    lifecycle_kind::failed,    lifecycle_kind::dead_lettered, lifecycle_kind::revoked};

/// An event is a flat map of scalars plus the error map: three levels below
/// the batch map are enough.
constexpr std::size_t max_batch_depth = 5;

error malformed(const std::string& what) { return error{errc::malformed_envelope, "task event: " + what}; }

expected<lifecycle_event> read_event(const value& v) {
  if (!v.is_map()) {
    return malformed("an event is not a map");
  }
  const auto& m = v.as_map();
  if (m.size() != 7) {
    return malformed("an event holds exactly kind, workflow, node, task, attempt, at and error");
  }
  auto get = [&](const char* k) -> const value* {
    auto i = m.find(k);
    return i == m.end() ? nullptr : &i->second;
  };
  lifecycle_event e;
  const auto* kind = get("kind");
  if (kind == nullptr || !kind->is_string()) {
    return malformed("no string 'kind'");
  }
  bool known = false;
  for (auto k : all_kinds) {
    if (kind->as_string() == to_string(k)) {
      e.kind = k;
      known = true;
    }
  }
  if (!known) {
    return malformed("unknown kind '" + kind->as_string().substr(0, 64) + "'");
  }
  const auto* workflow = get("workflow");
  if (workflow == nullptr || !workflow->is_string() || workflow->as_string().empty() ||
      workflow->as_string().size() > 256) {
    return malformed("'workflow' must be a string of 1 to 256 bytes");
  }
  e.workflow = workflow->as_string();
  const auto* node = get("node");
  if (node == nullptr || !(node->is_nil() || (node->is_integer() && node->as_int() >= 0 && node->as_int() <= INT32_MAX))) {
    return malformed("'node' must be nil or a node number from 0 to " + std::to_string(INT32_MAX));
  }
  if (node->is_integer()) {
    e.node = static_cast<std::int32_t>(node->as_int());
  }
  const auto* task = get("task");
  if (task == nullptr || !task->is_string() || task->as_string().size() > 1024) {
    return malformed("'task' must be a string of at most 1024 bytes");
  }
  e.task = task->as_string();
  const auto* attempt = get("attempt");
  if (attempt == nullptr || !attempt->is_integer() || attempt->as_int() < 0 || attempt->as_int() > INT32_MAX) {
    return malformed("'attempt' must be an integer from 0 to " + std::to_string(INT32_MAX));
  }
  e.attempt = static_cast<std::int32_t>(attempt->as_int());
  const auto* at = get("at");
  if (at == nullptr || !at->is_integer() || at->as_int() < 0) {
    return malformed("'at' must be a non-negative integer (epoch ms)");
  }
  e.at = at->as_int();
  const auto* err = get("error");
  if (err == nullptr || !(err->is_nil() || err->is_map())) {
    return malformed("'error' must be nil or a map");
  }
  if (err->is_map()) {
    const auto& em = err->as_map();
    auto type = em.find("type");
    auto message = em.find("message");
    if (em.size() != 2 || type == em.end() || !type->second.is_string() || message == em.end() ||
        !message->second.is_string()) {
      return malformed("'error' holds exactly the strings 'type' and 'message'");
    }
  }
  e.error = *err;
  return e;
}

}  // namespace

const char* to_string(lifecycle_kind k) noexcept {
  switch (k) {
    case lifecycle_kind::submitted:
      return "submitted";
    case lifecycle_kind::started:
      return "started";
    case lifecycle_kind::retried:
      return "retried";
    case lifecycle_kind::succeeded:
      return "succeeded";
    case lifecycle_kind::failed:
      return "failed";
    case lifecycle_kind::dead_lettered:
      return "dead_lettered";
    case lifecycle_kind::revoked:
      return "revoked";
  }
  return "unknown";
}

value to_value(const lifecycle_event& e) {
  value::map m;
  m["kind"] = std::string{to_string(e.kind)};
  m["workflow"] = e.workflow;
  m["node"] = e.node ? value(static_cast<std::int64_t>(*e.node)) : value{};
  m["task"] = e.task;
  m["attempt"] = static_cast<std::int64_t>(e.attempt);
  m["at"] = e.at;
  m["error"] = e.error;
  return value(std::move(m));
}

std::string encode_lifecycle_batch(const std::vector<lifecycle_event>& events) {
  value::array list;
  list.reserve(events.size());
  for (const auto& e : events) {
    list.push_back(to_value(e));
  }
  value::map batch;
  batch["v"] = lifecycle_version;
  batch["events"] = std::move(list);
  return pack_to_string(value(std::move(batch)));
}

expected<std::vector<lifecycle_event>> decode_lifecycle_batch(std::string_view bytes) {
  if (bytes.size() > max_lifecycle_batch_bytes) {
    return error{errc::payload_too_large, "task event batch of " + std::to_string(bytes.size()) +
                                              " bytes is over the limit of " +
                                              std::to_string(max_lifecycle_batch_bytes)};
  }
  auto v = unpack_from_string(bytes, max_lifecycle_batch_bytes, max_batch_depth);
  if (!v) {
    return error{v.error().code(), "task event batch: " + v.error().message()};
  }
  if (!v->is_map()) {
    return malformed("a batch is not a map");
  }
  const auto& m = v->as_map();
  auto version = m.find("v");
  if (version == m.end() || !version->second.is_integer()) {
    return malformed("no integer field 'v' (contract version)");
  }
  if (version->second.as_int() != lifecycle_version) {
    return error{errc::unsupported_version, "task event version " + std::to_string(version->second.as_int()) +
                                                " is not supported (this build speaks " +
                                                std::to_string(lifecycle_version) + ")"};
  }
  auto list = m.find("events");
  if (m.size() != 2 || list == m.end() || !list->second.is_array()) {
    return malformed("a batch holds exactly 'v' and the array 'events'");
  }
  if (list->second.as_array().size() > max_lifecycle_batch_events) {
    return malformed("more than " + std::to_string(max_lifecycle_batch_events) + " events in one batch");
  }
  std::vector<lifecycle_event> out;
  out.reserve(list->second.as_array().size());
  for (const auto& ev : list->second.as_array()) {
    auto e = read_event(ev);
    if (!e) {
      return e.error();
    }
    out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace trellis::detail
