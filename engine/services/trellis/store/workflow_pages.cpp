#include "trellis/store/workflow_pages.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <tuple>
#include <utility>

namespace trellis::detail {

value list_line(const workflow_summary& w) {
  value::map line{{"id", w.id},
                  {"state", std::string{to_string(w.state)}},
                  {"created_at", static_cast<std::int64_t>(w.created_at)},
                  {"finished_at", w.finished_at == 0 ? value{} : value(static_cast<std::int64_t>(w.finished_at))},
                  {"key", w.submit_key ? value(*w.submit_key) : value{}}};
  return value(std::move(line));
}

std::string cursor_after(const workflow_summary& w) { return std::to_string(w.created_at) + "." + w.id; }

expected<workflow_cursor> parse_cursor(std::string_view text) {
  auto bad = [&] {
    return error{errc::malformed_envelope, "cursor '" + std::string{text.substr(0, 64)} +
                                               "' is not one a page of workflows ended with"};
  };
  auto dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size()) {
    return bad();
  }
  workflow_cursor c;
  auto [end, ec] = std::from_chars(text.data(), text.data() + dot, c.created_at);
  if (ec != std::errc{} || end != text.data() + dot || c.created_at < 0) {
    return bad();
  }
  c.id = std::string{text.substr(dot + 1)};
  return c;
}

expected<value::map> workflow_page(sqlite_store& store, std::optional<node_state> state, std::size_t limit,
                              const std::string& cursor) {
  std::optional<workflow_cursor> after;
  if (!cursor.empty()) {
    auto c = parse_cursor(cursor);
    if (!c) {
      return c.error();
    }
    after = std::move(*c);
  }
  // One more than asked tells whether a next page exists.
  auto rows = store.recent_workflows(limit + 1, state, after);
  if (!rows) {
    return rows.error();
  }
  value next;
  if (rows->size() > limit) {
    rows->resize(limit);
    next = cursor_after(rows->back());
  }
  value::array lines;
  lines.reserve(rows->size());
  for (const auto& w : *rows) {
    lines.push_back(list_line(w));
  }
  // Built as a named map: GCC 12 reports a false -Wmaybe-uninitialized for
  // a map temporary holding a nil value.
  value::map page;
  page["workflows"] = std::move(lines);
  page["next"] = std::move(next);
  return page;
}

value merge_pages(const std::vector<value>& pages, std::size_t limit) {
  struct line_ref {
    std::int64_t created_at;
    std::string id;
    const value* line;
  };
  std::vector<line_ref> all;
  bool more = false;
  for (const auto& page : pages) {
    if (!page.is_map()) {
      continue;
    }
    const auto& m = page.as_map();
    auto next = m.find("next");
    more = more || (next != m.end() && !next->second.is_nil());
    auto lines = m.find("workflows");
    if (lines == m.end() || !lines->second.is_array()) {
      continue;
    }
    for (const auto& line : lines->second.as_array()) {
      if (!line.is_map()) {
        continue;
      }
      const auto& l = line.as_map();
      auto created = l.find("created_at");
      auto id = l.find("id");
      if (created == l.end() || !created->second.is_integer() || id == l.end() || !id->second.is_string()) {
        continue;
      }
      all.push_back(line_ref{created->second.as_int(), id->second.as_string(), &line});
    }
  }
  std::sort(all.begin(), all.end(), [](const line_ref& a, const line_ref& b) {
    return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
  });
  value next;
  if (all.size() > limit) {
    all.resize(limit);
    more = true;
  }
  if (more && !all.empty()) {
    next = std::to_string(all.back().created_at) + "." + all.back().id;
  }
  value::array lines;
  lines.reserve(all.size());
  for (const auto& r : all) {
    lines.push_back(*r.line);
  }
  value::map page;
  page["workflows"] = std::move(lines);
  page["next"] = std::move(next);
  return value(std::move(page));
}

}  // namespace trellis::detail
