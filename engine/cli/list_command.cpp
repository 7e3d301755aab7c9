#include "list_command.hpp"

#include "cli_output.hpp"
#include "control_commands.hpp"

#include "trellis/error.hpp"
#include "trellis/store/workflow_pages.hpp"

#include <cstdint>
#include <iostream>
#include <utility>

namespace trellis::cli {

std::string list_table(const std::vector<detail::workflow_summary>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& w : rows) {
    cells.push_back({w.id, std::string{to_string(w.state)}, utc_time(w.created_at), utc_time(w.finished_at),
                     w.submit_key.value_or("-")});
  }
  return format_table({"ID", "STATE", "CREATED (UTC)", "FINISHED (UTC)", "KEY"}, cells);
}

std::optional<detail::workflow_summary> summary_of(const value& line) {
  if (!line.is_map()) {
    return std::nullopt;
  }
  const auto& m = line.as_map();
  auto get = [&](const char* k) -> const value* {
    auto i = m.find(k);
    return i == m.end() ? nullptr : &i->second;
  };
  const auto* id = get("id");
  const auto* state = get("state");
  const auto* created = get("created_at");
  const auto* finished = get("finished_at");
  const auto* key = get("key");
  if (id == nullptr || !id->is_string() || state == nullptr || !state->is_string() || created == nullptr ||
      !created->is_integer()) {
    return std::nullopt;
  }
  detail::workflow_summary w;
  w.id = id->as_string();
  w.state = node_state_from_string(state->as_string()).value_or(node_state::pending);
  w.created_at = created->as_int();
  w.finished_at = finished != nullptr && finished->is_integer() ? finished->as_int() : 0;
  if (key != nullptr && key->is_string()) {
    w.submit_key = key->as_string();
  }
  return w;
}

int list_over_broker(const detail::cluster_options& cluster, const list_options& opts) {
  auto c = connect_trellis_client(cluster, "trellis-list");
  auto fail = [](const error& e) {
    std::cerr << "error: " << to_string(e) << '\n';
    return e.code() == errc::malformed_envelope ? exit_broker : exit_code_for(e.code());
  };
  if (!c) {
    return fail(c.error());
  }
  workflow_query query;
  query.state = opts.state;
  query.limit = opts.limit;
  auto page = (*c)->workflows(query);
  if (!page) {
    return fail(page.error());
  }
  std::vector<detail::workflow_summary> rows;
  if (page->is_map() && page->as_map().count("workflows") != 0 && page->as_map().at("workflows").is_array()) {
    for (const auto& line : page->as_map().at("workflows").as_array()) {
      if (auto w = summary_of(line)) {
        rows.push_back(std::move(*w));
      }
    }
  }
  if (opts.format == output_format::table) {
    std::cout << list_table(rows) << std::flush;
    return exit_success;
  }
  for (const auto& w : rows) {
    std::cout << to_json(detail::list_line(w)) << '\n';
  }
  std::cout.flush();
  return exit_success;
}

int list_from_store(const std::string& db, const list_options& opts) {
  detail::store_options read_only;
  read_only.read_only = true;
  auto store = detail::sqlite_store::open(db, read_only);
  auto rows = store->recent_workflows(opts.limit, opts.state);
  if (!rows) {
    throw setup_error(rows.error().code(), rows.error().message());
  }
  if (opts.format == output_format::table) {
    std::cout << list_table(*rows) << std::flush;
    return 0;
  }
  for (const auto& w : *rows) {
    std::cout << to_json(detail::list_line(w)) << '\n';
  }
  std::cout.flush();
  return 0;
}

}  // namespace trellis::cli
