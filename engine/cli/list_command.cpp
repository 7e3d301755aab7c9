#include "list_command.hpp"

#include "trellis/error.hpp"

#include <cstdint>
#include <iostream>
#include <utility>

namespace trellis::cli {

value list_line(const detail::workflow_summary& w) {
  value::map line{{"id", w.id},
                  {"state", std::string{to_string(w.state)}},
                  {"created_at", static_cast<std::int64_t>(w.created_at)},
                  {"finished_at", w.finished_at == 0 ? value{} : value(static_cast<std::int64_t>(w.finished_at))},
                  {"key", w.submit_key ? value(*w.submit_key) : value{}}};
  return value(std::move(line));
}

std::string list_table(const std::vector<detail::workflow_summary>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& w : rows) {
    cells.push_back({w.id, std::string{to_string(w.state)}, utc_time(w.created_at), utc_time(w.finished_at),
                     w.submit_key.value_or("-")});
  }
  return format_table({"ID", "STATE", "CREATED (UTC)", "FINISHED (UTC)", "KEY"}, cells);
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
    std::cout << to_json(list_line(w)) << '\n';
  }
  std::cout.flush();
  return 0;
}

}  // namespace trellis::cli
