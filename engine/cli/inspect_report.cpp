#include "inspect_report.hpp"

#include "trellis/transport/subjects.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

namespace trellis::cli {

namespace {

/// What one worker answer serves: its queues (none: every queue) and the
/// tokens of its tasks (unset: every task).
struct served {
  bool all_queues = false;
  std::set<std::string> queues;
  bool all_tasks = false;
  std::set<std::string> tokens;
};

std::vector<std::string> strings_of(const value::map& m, const char* key) {
  std::vector<std::string> out;
  auto i = m.find(key);
  if (i == m.end() || !i->second.is_array()) {
    return out;
  }
  for (const auto& v : i->second.as_array()) {
    if (v.is_string()) {
      out.push_back(v.as_string());
    }
  }
  return out;
}

}  // namespace

std::vector<unserved_task> unserved_tasks(const std::vector<value::map>& answers,
                                          const std::vector<detail::queued_subject>& census) {
  std::vector<served> workers;
  std::map<std::string, std::string> name_of;  // token -> a name announced for it
  for (const auto& a : answers) {
    auto role = a.find("role");
    if (role == a.end() || !role->second.is_string() || role->second.as_string() != "worker") {
      continue;
    }
    served w;
    auto all = a.find("all_queues");
    w.all_queues = all != a.end() && all->second.is_bool() && all->second.as_bool();
    for (auto& q : strings_of(a, "queues")) {
      w.queues.insert(std::move(q));
    }
    w.all_tasks = a.find("tasks") == a.end();
    for (const auto& t : strings_of(a, "tasks")) {
      auto token = detail::subject_space::task_token(t);
      name_of.emplace(token, t);
      w.tokens.insert(std::move(token));
    }
    workers.push_back(std::move(w));
  }
  std::vector<unserved_task> out;
  for (const auto& s : census) {
    bool is_served = std::any_of(workers.begin(), workers.end(), [&](const served& w) {
      return (w.all_queues || w.queues.count(s.queue) != 0) && (w.all_tasks || w.tokens.count(s.task_token) != 0);
    });
    if (!is_served) {
      auto name = name_of.find(s.task_token);
      out.push_back(unserved_task{s.queue, name != name_of.end() ? name->second : s.task_token, s.messages});
    }
  }
  return out;
}

value unserved_line(const unserved_task& t) {
  value::map line{{"role", "unserved"},
                  {"queue", t.queue},
                  {"task", t.task},
                  {"messages", static_cast<std::int64_t>(std::min<std::uint64_t>(t.messages, INT64_MAX))}};
  return value(std::move(line));
}

}  // namespace trellis::cli
