#include "table_output.hpp"

#include <algorithm>
#include <ctime>
#include <sstream>

namespace trellis::cli {

namespace {

const value& field(const value::map& m, const char* key) {
  static const value none;
  auto i = m.find(key);
  return i == m.end() ? none : i->second;
}

/// "3/10 loading" from a node's progress {done, total, message} and custom state.
std::string progress_cell(const value::map& node) {
  std::string text;
  const auto& p = field(node, "progress");
  if (p.is_map()) {
    text = cell(field(p.as_map(), "done"));
    if (!field(p.as_map(), "total").is_nil()) {
      text += "/" + cell(field(p.as_map(), "total"));
    }
    const auto& message = field(p.as_map(), "message");
    if (message.is_string() && !message.as_string().empty()) {
      text += " " + message.as_string();
    }
  }
  const auto& custom = field(node, "custom_state");
  if (custom.is_string()) {
    text += (text.empty() ? "" : " ") + std::string{"["} + custom.as_string() + "]";
  }
  return text.empty() ? "-" : text;
}

/// "type: message" of an error map, "-" for none.
std::string error_cell(const value& e) {
  if (!e.is_map()) {
    return cell(e);
  }
  return cell(field(e.as_map(), "type")) + ": " + cell(field(e.as_map(), "message"));
}

}  // namespace

std::string format_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  widen(header);
  for (const auto& row : rows) {
    widen(row);
  }
  std::ostringstream out;
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(width[i] - row[i].size() + 2, ' ');
      }
    }
    out << line << '\n';
  };
  print(header);
  for (const auto& row : rows) {
    print(row);
  }
  return out.str();
}

std::string utc_time(std::int64_t epoch_ms) {
  if (epoch_ms == 0) {
    return "-";
  }
  std::time_t seconds = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm parts{};
  char text[32];
  if (gmtime_r(&seconds, &parts) == nullptr) {
    return std::to_string(epoch_ms);
  }
  auto n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return n == 0 ? std::to_string(epoch_ms) : std::string{text, n};
}

std::string cell(const value& v) {
  if (v.is_nil()) {
    return "-";
  }
  return v.is_string() ? v.as_string() : to_json(v);
}

std::string status_table(const value::map& doc) {
  std::string out = "workflow " + cell(field(doc, "id")) + "  " + cell(field(doc, "state")) + '\n';
  if (!field(doc, "result").is_nil()) {
    out += "result  " + to_json(field(doc, "result")) + '\n';
  }
  if (!field(doc, "error").is_nil()) {
    out += "error   " + error_cell(field(doc, "error")) + '\n';
  }
  std::vector<std::vector<std::string>> rows;
  if (field(doc, "nodes").is_array()) {
    for (const auto& n : field(doc, "nodes").as_array()) {
      if (!n.is_map()) {
        continue;
      }
      const auto& m = n.as_map();
      rows.push_back({cell(field(m, "node")), cell(field(m, "task")), cell(field(m, "state")),
                      cell(field(m, "attempt")), progress_cell(m), error_cell(field(m, "error"))});
    }
  }
  return out + '\n' + format_table({"NODE", "TASK", "STATE", "ATTEMPT", "PROGRESS", "ERROR"}, rows);
}

std::string dead_letter_table(const value::array& letters) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& l : letters) {
    if (!l.is_map()) {
      continue;
    }
    const auto& m = l.as_map();
    const auto& created = field(m, "created_at");
    const auto& replayed = field(m, "replayed");
    rows.push_back({cell(field(m, "id")), cell(field(m, "workflow_id")), cell(field(m, "node")), cell(field(m, "task")),
                    cell(field(m, "reason")), cell(field(m, "attempts")),
                    created.is_integer() ? utc_time(created.as_int()) : cell(created),
                    replayed.is_bool() ? (replayed.as_bool() ? "yes" : "no") : cell(replayed)});
  }
  return format_table({"ID", "WORKFLOW", "NODE", "TASK", "REASON", "ATTEMPTS", "CREATED (UTC)", "REPLAYED"}, rows);
}

}  // namespace trellis::cli
