#pragma once

/// @file
/// Internal to the command line: its exit codes and the JSON lines every
/// command prints (docs/cli.md "Output formats" and "Exit codes"), shared by
/// the store commands (workflow_cli.cpp) and the broker commands
/// (control_commands.cpp), so both forms of a command print the same.

#include "trellis/error.hpp"
#include "trellis/node_state.hpp"
#include "trellis/value.hpp"

#include <optional>
#include <string>

namespace trellis::cli {

inline constexpr int exit_success = 0;
inline constexpr int exit_workflow_failed = 1;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_store = 3;
inline constexpr int exit_broker = 4;        // the NATS broker cannot be reached (cluster commands)
inline constexpr int exit_pool_failed = 5;   // a worker's process pool cannot run handlers any more
inline constexpr int exit_timed_out = 6;     // a wait's --timeout-ms ran out; the workflow goes on
inline constexpr int exit_terminated = 143;  // 128 + SIGTERM, as shells report it

/// The exit code of a command that failed with `code`.
inline int exit_code_for(errc code) {
  switch (code) {
    case errc::store_corrupt:
    case errc::store_locked:
    case errc::store_failed:
      return exit_store;
    case errc::broker_unavailable:
    case errc::timeout:
      return exit_broker;
    case errc::process_pool_failed:
      return exit_pool_failed;
    default:
      return exit_bad_input;
  }
}

inline std::string json_string(const std::string& s) { return to_json(value(s)); }

/// The outcome line: {"id", "state", "result", "error"}, in that order.
inline std::string outcome_line(const std::string& id, node_state state, const value& result, const value& error) {
  std::string line = "{\"id\":" + json_string(id) + ",\"state\":\"" + std::string{to_string(state)} + "\"";
  line += ",\"result\":" + to_json(state == node_state::success ? result : value{});
  line += ",\"error\":" + to_json(state == node_state::success ? value{} : error);
  line += "}";
  return line;
}

/// The status line of a status document (store_reports.hpp): id, state,
/// result, error, nodes, failed_attempts, in that order.
inline std::string status_line(const value::map& doc) {
  auto field = [&](const char* key) { return doc.count(key) != 0 ? to_json(doc.at(key)) : std::string{"null"}; };
  std::string line = "{\"id\":" + field("id") + ",\"state\":" + field("state");
  line += ",\"result\":" + field("result") + ",\"error\":" + field("error");
  line += ",\"nodes\":" + field("nodes") + ",\"failed_attempts\":" + field("failed_attempts");
  line += "}";
  return line;
}

/// What `revoke` prints: for a whole workflow its outcome line (state
/// REVOKED); for a node {"id", "node", "state", "revoked"}, in that order,
/// `revoked` listing the task nodes it revoked. Empty when the answer is not
/// one of the two (a dispatcher that does not speak this contract).
inline std::optional<std::string> revoke_line(const std::string& id, const value& answer) {
  if (!answer.is_map()) {
    return std::nullopt;
  }
  const auto& m = answer.as_map();
  auto field = [&](const char* key) { return m.count(key) != 0 ? m.at(key) : value{}; };
  auto name = field("state");
  auto state = name.is_string() ? node_state_from_string(name.as_string()) : std::nullopt;
  if (!state) {
    return std::nullopt;
  }
  if (m.count("node") == 0) {
    return outcome_line(id, *state, field("result"), field("error"));
  }
  if (!field("node").is_integer() || !field("revoked").is_array()) {
    return std::nullopt;
  }
  return "{\"id\":" + json_string(id) + ",\"node\":" + to_json(field("node")) + ",\"state\":" + to_json(name) +
         ",\"revoked\":" + to_json(field("revoked")) + "}";
}

}  // namespace trellis::cli
