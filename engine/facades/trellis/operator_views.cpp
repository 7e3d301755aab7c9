#include "trellis/operator_views.hpp"

#include "trellis/clock.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <utility>

namespace trellis::detail {

value worker_inspect_answer(const std::string& name, const std::vector<std::string>& queues,
                            const std::vector<std::string>& tasks, const worker_activity& activity, const char* role) {
  value::array active;
  for (const auto& t : activity.active()) {
    value::map row{{"task", t.task},
                   {"workflow_id", t.workflow_id},
                   {"node", t.node},
                   {"attempt", t.attempt},
                   {"started_at", t.started_at},
                   {"running_ms", std::max<std::int64_t>(0, now_epoch_ms() - t.started_at)}};
    active.emplace_back(std::move(row));
  }
  value::array queue_names;
  for (const auto& q : queues) {
    queue_names.emplace_back(q);
  }
  value::array task_names;
  for (const auto& t : tasks) {
    task_names.emplace_back(t);
  }
  value::map answer{{"role", std::string{role}},
                    {"name", name},
                    {"queues", std::move(queue_names)},
                    {"tasks", std::move(task_names)},
                    {"all_queues", queues.empty()},
                    {"concurrency", static_cast<std::int64_t>(activity.slots())},
                    {"active", std::move(active)},
                    {"revoked_known", static_cast<std::int64_t>(activity.revoked_count())}};
  return value(std::move(answer));
}

namespace {

/// The value of label `name` in `labels` (the text between the braces),
/// unescaped; nullopt when absent.
std::optional<std::string> label(std::string_view labels, std::string_view name) {
  std::string key = std::string{name} + "=\"";
  for (std::size_t at = 0; (at = labels.find(key, at)) != std::string_view::npos; at += key.size()) {
    if (at != 0 && labels[at - 1] != ',' && labels[at - 1] != '{' && labels[at - 1] != ' ') {
      continue;  // a label whose name ends in `name`
    }
    std::string out;
    for (auto i = at + key.size(); i < labels.size(); ++i) {
      char c = labels[i];
      if (c == '\\' && i + 1 < labels.size()) {
        char next = labels[++i];
        out += next == 'n' ? '\n' : next;
      } else if (c == '"') {
        return out;
      } else {
        out += c;
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

value::array queue_rows(std::string_view text) {
  struct row {
    double depth = 0;
    double published = 0, succeeded = 0, failed = 0, retried = 0, dead = 0;
  };
  std::map<std::string, row> rows;
  const std::map<std::string_view, double row::*, std::less<>> families = {
      {"trellis_tasks_published_total", &row::published}, {"trellis_tasks_succeeded_total", &row::succeeded},
      {"trellis_tasks_failed_total", &row::failed},       {"trellis_retries_total", &row::retried},
      {"trellis_dead_letters_total", &row::dead}};
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    auto line = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 1;
    auto brace = line.find('{');
    auto close = line.rfind('}');
    if (line.empty() || line.front() == '#' || brace == std::string_view::npos || close == std::string_view::npos ||
        close < brace) {
      continue;
    }
    auto name = line.substr(0, brace);
    bool is_depth = name == "trellis_queue_depth";
    auto family = families.find(name);
    if (!is_depth && family == families.end()) {
      continue;
    }
    auto queue = label(line.substr(brace, close - brace + 1), "queue");
    if (!queue || queue->empty()) {
      continue;
    }
    auto number = line.substr(close + 1);
    while (!number.empty() && number.front() == ' ') {
      number.remove_prefix(1);
    }
    number = number.substr(0, number.find(' '));
    double v = 0;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (ec != std::errc{} || ptr != number.data() + number.size()) {
      continue;
    }
    auto& r = rows[*queue];
    if (is_depth) {
      r.depth = std::max(r.depth, v);
    } else {
      r.*(family->second) += v;
    }
  }
  value::array out;
  for (const auto& [queue, r] : rows) {
    auto count = [](double v) { return static_cast<std::int64_t>(v); };
    value::map m{{"queue", queue},
                 {"depth", count(r.depth)},
                 {"published", count(r.published)},
                 {"succeeded", count(r.succeeded)},
                 {"failed", count(r.failed)},
                 {"retried", count(r.retried)},
                 {"dead_letters", count(r.dead)}};
    out.emplace_back(std::move(m));
  }
  return out;
}

}  // namespace trellis::detail
