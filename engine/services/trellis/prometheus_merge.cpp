#include "trellis/prometheus_merge.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace trellis::detail {

namespace {

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':'; }

bool is_name_char(char c) { return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0; }

/// Length of the metric or label name at the start of `s` (0: none).
std::size_t name_length(std::string_view s) {
  if (s.empty() || !is_name_start(s[0])) {
    return 0;
  }
  std::size_t n = 1;
  while (n < s.size() && is_name_char(s[n])) {
    ++n;
  }
  return n;
}

error bad_line(std::size_t number, std::string_view line, const std::string& why) {
  return error{errc::malformed_envelope,
               "metrics text line " + std::to_string(number) + " (" + std::string{line.substr(0, 120)} + "): " + why};
}

/// The label names of `labels` (the text between the braces), or why it is
/// not `name="value",...`.
expected<std::vector<std::string>> label_names(std::string_view labels) {
  std::vector<std::string> names;
  std::size_t i = 0;
  while (i < labels.size()) {
    auto n = name_length(labels.substr(i));
    if (n == 0 || i + n + 1 >= labels.size() || labels[i + n] != '=' || labels[i + n + 1] != '"') {
      return error{errc::malformed_envelope, "a label is not name=\"value\""};
    }
    names.emplace_back(labels.substr(i, n));
    i += n + 2;
    while (i < labels.size() && labels[i] != '"') {
      i += labels[i] == '\\' ? 2 : 1;
    }
    if (i >= labels.size()) {
      return error{errc::malformed_envelope, "a label value is not closed"};
    }
    ++i;  // the closing quote
    if (i < labels.size()) {
      if (labels[i] != ',') {
        return error{errc::malformed_envelope, "labels are not separated by commas"};
      }
      ++i;
    }
  }
  return names;
}

/// The end of the label set that starts at `open` (the '{'), skipping
/// braces inside quoted values; npos when it is not closed.
std::size_t closing_brace(std::string_view line, std::size_t open) {
  bool quoted = false;
  for (std::size_t i = open + 1; i < line.size(); ++i) {
    if (quoted && line[i] == '\\') {
      ++i;
    } else if (line[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && line[i] == '}') {
      return i;
    }
  }
  return std::string_view::npos;
}

bool belongs_to(const std::string& sample, const std::string& family) {
  if (family.empty() || sample.compare(0, family.size(), family) != 0) {
    return false;
  }
  auto suffix = std::string_view{sample}.substr(family.size());
  return suffix.empty() || suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
}

}  // namespace

std::string in_format(std::string text, metrics_format format) {
  if (format == metrics_format::prometheus) {
    return text;
  }
  // The counter families first (their TYPE line may follow their HELP).
  std::vector<std::string> counters;
  std::string_view rest{text};
  while (!rest.empty()) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    constexpr std::string_view type = "# TYPE ";
    constexpr std::string_view suffix = " counter";
    if (line.substr(0, type.size()) == type && line.size() > type.size() + suffix.size() &&
        line.substr(line.size() - suffix.size()) == suffix) {
      counters.emplace_back(line.substr(type.size(), line.size() - type.size() - suffix.size()));
    }
  }
  std::string out;
  out.reserve(text.size() + 16);
  rest = text;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    bool declared = false;
    for (std::string_view head : {"# HELP ", "# TYPE "}) {
      if (line.substr(0, head.size()) != head) {
        continue;
      }
      auto name_end = line.find(' ', head.size());
      auto name = line.substr(head.size(), name_end == std::string_view::npos ? line.npos : name_end - head.size());
      constexpr std::string_view total = "_total";
      if (name.size() > total.size() && name.substr(name.size() - total.size()) == total &&
          std::find(counters.begin(), counters.end(), name) != counters.end()) {
        out.append(line.substr(0, head.size()));
        out.append(name.substr(0, name.size() - total.size()));
        out.append(name_end == std::string_view::npos ? std::string_view{} : line.substr(name_end));
        out.push_back('\n');
        declared = true;
      }
    }
    if (!declared && !line.empty()) {
      out.append(line);
      out.push_back('\n');
    }
  }
  out += "# EOF\n";
  return out;
}

std::string escape_label_value(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (char c : raw) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

prometheus_merge::family& prometheus_merge::find(std::vector<family>& families, const std::string& name) {
  auto i = std::find_if(families.begin(), families.end(), [&](const family& f) { return f.name == name; });
  if (i != families.end()) {
    return *i;
  }
  families.push_back(family{name, std::nullopt, std::nullopt, {}});
  return families.back();
}

expected<void> prometheus_merge::add(std::string_view text, const std::string& label, const std::string& value) {
  // Merged into a copy, so that a refused text leaves nothing behind.
  auto merged = families_;
  std::string current;  // the family of the last HELP or TYPE line
  std::string injected = label + "=\"" + escape_label_value(value) + "\"";
  std::size_t number = 0;
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue;
    }
    if (line[0] == '#') {
      bool help = line.rfind("# HELP ", 0) == 0;
      bool type = line.rfind("# TYPE ", 0) == 0;
      if (!help && !type) {
        continue;  // a plain comment
      }
      auto rest = line.substr(7);
      auto n = name_length(rest);
      if (n == 0 || (n < rest.size() && rest[n] != ' ')) {
        return bad_line(number, line, "HELP or TYPE names no metric");
      }
      current = std::string{rest.substr(0, n)};
      auto body = n < rest.size() ? std::string{rest.substr(n + 1)} : std::string{};
      auto& f = find(merged, current);
      if (help && !f.help) {
        f.help = body;
      } else if (type && !f.type) {
        f.type = body;
      } else if (type && *f.type != body) {
        return bad_line(number, line, "family " + current + " was declared " + *f.type + " before");
      }
      continue;
    }
    auto n = name_length(line);
    if (n == 0) {
      return bad_line(number, line, "a sample does not start with a metric name");
    }
    std::string name{line.substr(0, n)};
    std::string labels;
    auto after = n;
    if (n < line.size() && line[n] == '{') {
      auto close = closing_brace(line, n);
      if (close == std::string_view::npos) {
        return bad_line(number, line, "the label set is not closed");
      }
      auto names = label_names(line.substr(n + 1, close - n - 1));
      if (!names) {
        return bad_line(number, line, names.error().message());
      }
      if (std::find(names->begin(), names->end(), label) != names->end()) {
        return bad_line(number, line, "the sample already has the label '" + label + "'");
      }
      labels = std::string{line.substr(n + 1, close - n - 1)};
      after = close + 1;
    }
    if (after >= line.size() || line[after] != ' ' || line.find_first_not_of(' ', after) == std::string_view::npos) {
      return bad_line(number, line, "a sample has no value");
    }
    auto sample = name + "{" + injected + (labels.empty() ? "" : "," + labels) + "}" + std::string{line.substr(after)};
    find(merged, belongs_to(name, current) ? current : name).samples.push_back(std::move(sample));
  }
  families_ = std::move(merged);
  return {};
}

std::string prometheus_merge::text() const {
  std::string out;
  for (const auto& f : families_) {
    if (f.help) {
      out += "# HELP " + f.name + " " + *f.help + "\n";
    }
    if (f.type) {
      out += "# TYPE " + f.name + " " + *f.type + "\n";
    }
    for (const auto& s : f.samples) {
      out += s + "\n";
    }
  }
  return out;
}

}  // namespace trellis::detail
