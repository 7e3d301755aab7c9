#include "trellis/control_messages.hpp"

#include "trellis/defaults.hpp"

#include "trellis/detail/value_codec.hpp"
#include "trellis/node_state.hpp"

#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <utility>

namespace trellis::detail {

namespace {

// A reply's body holds workflow results: the envelope's depth limit, plus the
// levels the status document and the reply map add around them.
constexpr std::size_t max_control_depth = 64 + 4;

constexpr std::array<control_op, 11> all_ops = {
    control_op::status,  control_op::revoke,  control_op::dlq_list, control_op::dlq_replay,
    control_op::inspect, control_op::metrics, control_op::revoked,  control_op::list,
    control_op::graph,   control_op::prune,   control_op::forget};

bool takes_workflow(control_op op) noexcept {
  return op == control_op::status || op == control_op::revoke || op == control_op::revoked ||
         op == control_op::graph || op == control_op::forget;
}

bool names_nodes(control_op op) noexcept { return op == control_op::revoke || op == control_op::revoked; }

error malformed(const std::string& what) { return error{errc::malformed_envelope, "control message: " + what}; }

/// The map inside `bytes`, with its version checked.
expected<value::map> read_map(std::string_view bytes) {
  if (bytes.size() > max_control_bytes) {
    return error{errc::payload_too_large, "control message of " + std::to_string(bytes.size()) +
                                              " bytes is over the limit of " + std::to_string(max_control_bytes)};
  }
  auto v = unpack_from_string(bytes, max_control_bytes, max_control_depth);
  if (!v) {
    return error{v.error().code(), "control message: " + v.error().message()};
  }
  if (!v->is_map()) {
    return malformed("not a map");
  }
  auto m = std::move(*v).as_map();
  auto version = m.find("v");
  if (version == m.end() || !version->second.is_integer()) {
    return malformed("no integer field 'v' (contract version)");
  }
  if (version->second.as_int() != control_version) {
    return error{errc::unsupported_version, "control message version " + std::to_string(version->second.as_int()) +
                                                " is not supported (this build speaks " +
                                                std::to_string(control_version) + ")"};
  }
  m.erase(version);
  return m;
}

std::optional<errc> errc_named(const std::string& name) {
  for (int i = static_cast<int>(errc::malformed_envelope); i <= static_cast<int>(errc::revoked); ++i) {
    auto code = static_cast<errc>(i);
    if (name == to_string(code)) {
      return code;
    }
  }
  return std::nullopt;
}

}  // namespace

const char* to_string(control_op op) noexcept {
  switch (op) {
    case control_op::status:
      return "status";
    case control_op::revoke:
      return "revoke";
    case control_op::dlq_list:
      return "dlq_list";
    case control_op::dlq_replay:
      return "dlq_replay";
    case control_op::inspect:
      return "inspect";
    case control_op::metrics:
      return "metrics";
    case control_op::revoked:
      return "revoked";
    case control_op::list:
      return "list";
    case control_op::graph:
      return "graph";
    case control_op::prune:
      return "prune";
    case control_op::forget:
      return "forget";
  }
  return "unknown";
}

const char* subject_verb(control_op op) noexcept {
  switch (op) {
    case control_op::dlq_list:
    case control_op::dlq_replay:
      return "dlq";
    default:
      return to_string(op);
  }
}

std::string encode(const control_request& r) {
  value::map m{{"v", control_version}, {"op", std::string{to_string(r.op)}}};
  if (takes_workflow(r.op)) {
    m.emplace("id", r.workflow_id);
  }
  if (r.op == control_op::dlq_replay) {
    m.emplace("letter", r.letter);
  }
  if (r.op == control_op::revoke && r.node) {
    m.emplace("node", *r.node);
  }
  if (r.op == control_op::revoked && !r.nodes.empty()) {
    value::array nodes;
    nodes.reserve(r.nodes.size());
    for (auto n : r.nodes) {
      nodes.emplace_back(n);
    }
    m.emplace("nodes", std::move(nodes));
  }
  if (names_nodes(r.op)) {
    if (r.terminate) {
      m.emplace("terminate", true);
    }
  }
  if (r.op == control_op::prune) {
    m.emplace("older_than_ms", r.older_than_ms);
  }
  if (r.op == control_op::list) {
    m.emplace("limit", r.limit);
    if (!r.state.empty()) {
      m.emplace("state", r.state);
    }
    if (!r.cursor.empty()) {
      m.emplace("cursor", r.cursor);
    }
  }
  return pack_to_string(value(std::move(m)));
}

expected<control_request> decode_control_request(std::string_view bytes) {
  auto m = read_map(bytes);
  if (!m) {
    return m.error();
  }
  auto op_field = m->find("op");
  if (op_field == m->end() || !op_field->second.is_string()) {
    return malformed("no string field 'op'");
  }
  control_request r;
  bool known = false;
  for (auto op : all_ops) {
    if (op_field->second.as_string() == to_string(op)) {
      r.op = op;
      known = true;
    }
  }
  if (!known) {
    return malformed("unknown op '" + op_field->second.as_string() + "'");
  }
  m->erase(op_field);
  if (takes_workflow(r.op)) {
    auto id = m->find("id");
    if (id == m->end() || !id->second.is_string() || id->second.as_string().empty()) {
      return malformed(std::string{"op '"} + to_string(r.op) + "' needs a non-empty string field 'id'");
    }
    r.workflow_id = id->second.as_string();
    m->erase(id);
  }
  if (r.op == control_op::dlq_replay) {
    auto letter = m->find("letter");
    if (letter == m->end() || !letter->second.is_integer()) {
      return malformed("op 'dlq_replay' needs an integer field 'letter'");
    }
    r.letter = letter->second.as_int();
    m->erase(letter);
  }
  auto node_number = [](const value& v) {
    return v.is_integer() && v.as_int() >= 0 && v.as_int() <= INT32_MAX;
  };
  if (r.op == control_op::revoke) {
    if (auto node = m->find("node"); node != m->end()) {
      if (!node_number(node->second)) {
        return malformed("'node' must be an integer from 0 to " + std::to_string(INT32_MAX));
      }
      r.node = static_cast<std::int32_t>(node->second.as_int());
      m->erase(node);
    }
  }
  if (r.op == control_op::revoked) {
    if (auto nodes = m->find("nodes"); nodes != m->end()) {
      if (!nodes->second.is_array() || nodes->second.as_array().empty() ||
          nodes->second.as_array().size() > max_revoked_nodes) {
        return malformed("'nodes' must be an array of 1 to " + std::to_string(max_revoked_nodes) + " node numbers");
      }
      for (const auto& n : nodes->second.as_array()) {
        if (!node_number(n)) {
          return malformed("'nodes' holds something that is not a node number from 0 to " +
                           std::to_string(INT32_MAX));
        }
        r.nodes.push_back(static_cast<std::int32_t>(n.as_int()));
      }
      m->erase(nodes);
    }
  }
  if (names_nodes(r.op)) {
    if (auto terminate = m->find("terminate"); terminate != m->end()) {
      if (!terminate->second.is_bool()) {
        return malformed("'terminate' must be a boolean");
      }
      r.terminate = terminate->second.as_bool();
      m->erase(terminate);
    }
  }
  if (r.op == control_op::list) {
    auto limit = m->find("limit");
    if (limit == m->end() || !limit->second.is_integer() || limit->second.as_int() < 1 ||
        limit->second.as_int() > max_list_page) {
      return malformed("op 'list' needs an integer field 'limit' from 1 to " + std::to_string(max_list_page));
    }
    r.limit = limit->second.as_int();
    m->erase(limit);
    if (auto state = m->find("state"); state != m->end()) {
      if (!state->second.is_string() || !node_state_from_string(state->second.as_string())) {
        return malformed("'state' must be the name of a state, such as \"SUCCESS\"");
      }
      r.state = state->second.as_string();
      m->erase(state);
    }
    if (auto cursor = m->find("cursor"); cursor != m->end()) {
      if (!cursor->second.is_string() || cursor->second.as_string().empty() ||
          cursor->second.as_string().size() > max_cursor_bytes) {
        return malformed("'cursor' must be a string of 1 to " + std::to_string(max_cursor_bytes) + " bytes");
      }
      r.cursor = cursor->second.as_string();
      m->erase(cursor);
    }
  }
  if (r.op == control_op::prune) {
    auto older = m->find("older_than_ms");
    if (older == m->end() || !older->second.is_integer() || older->second.as_int() < 0 ||
        older->second.as_int() > defaults::max_expires.count()) {
      return malformed("op 'prune' needs an integer field 'older_than_ms' from 0 to " +
                       std::to_string(defaults::max_expires.count()));
    }
    r.older_than_ms = older->second.as_int();
    m->erase(older);
  }
  if (!m->empty()) {
    return malformed("field '" + m->begin()->first + "' is not part of op '" + to_string(r.op) + "'");
  }
  return r;
}

std::string encode_control_reply(const value& body) {
  return pack_to_string(value(value::map{{"v", control_version}, {"ok", body}}));
}

std::string encode_control_error(const error& e) {
  value::map err{{"type", std::string{to_string(e.code())}}, {"message", e.message()}};
  return pack_to_string(value(value::map{{"v", control_version}, {"error", std::move(err)}}));
}

expected<value> decode_control_reply(std::string_view bytes) {
  auto m = read_map(bytes);
  if (!m) {
    return m.error();
  }
  if (m->size() != 1) {
    return malformed("a reply holds exactly one of 'ok' and 'error'");
  }
  auto& [key, body] = *m->begin();
  if (key == "ok") {
    return std::move(body);
  }
  if (key != "error") {
    return malformed("a reply holds 'ok' or 'error', not '" + key + "'");
  }
  if (!body.is_map()) {
    return malformed("'error' is not a map");
  }
  const auto& err = body.as_map();
  auto type = err.find("type");
  auto message = err.find("message");
  if (type == err.end() || !type->second.is_string() || message == err.end() || !message->second.is_string()) {
    return malformed("'error' needs string fields 'type' and 'message'");
  }
  auto code = errc_named(type->second.as_string());
  if (!code) {
    return malformed("error of unknown type '" + type->second.as_string() + "': " + message->second.as_string());
  }
  return error{*code, message->second.as_string()};
}

}  // namespace trellis::detail
