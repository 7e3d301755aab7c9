#include "serve_check.hpp"

#include "control_commands.hpp"
#include "inspect_report.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/log.hpp"
#include "trellis/transport/subjects.hpp"

#include <algorithm>
#include <iostream>
#include <iterator>
#include <utility>

namespace trellis::cli {

namespace {

void collect(const canvas& c, const task_registry& tasks, std::vector<needed_task>& out) {
  for (const auto* callbacks : {&c.links(), &c.link_errors()}) {
    for (const auto& cb : *callbacks) {
      collect(cb, tasks, out);
    }
  }
  if (c.is_task()) {
    needed_task t{c.sig().task(), c.sig().options().queue};
    if (!t.queue) {
      if (const auto* known = tasks.find(t.task)) {
        t.queue = known->defaults.queue;
      }
    }
    if (std::find(out.begin(), out.end(), t) == out.end()) {
      out.push_back(std::move(t));
    }
    return;
  }
  for (const auto& child : c.children()) {
    collect(child, tasks, out);
  }
  if (c.type() == canvas::kind::chord) {
    collect(c.body(), tasks, out);
  }
}

bool has_string(const value::map& m, const char* key, const std::string& wanted) {
  auto i = m.find(key);
  if (i == m.end() || !i->second.is_array()) {
    return false;
  }
  const auto& items = i->second.as_array();
  return std::any_of(items.begin(), items.end(),
                     [&](const value& v) { return v.is_string() && v.as_string() == wanted; });
}

bool serves(const value::map& worker, const needed_task& t) {
  auto all = worker.find("all_queues");
  bool all_queues = all != worker.end() && all->second.is_bool() && all->second.as_bool();
  bool queue_ok = all_queues || !t.queue || has_string(worker, "queues", *t.queue);
  bool task_ok = worker.find("tasks") == worker.end() || has_string(worker, "tasks", t.task);
  return queue_ok && task_ok;
}

}  // namespace

std::vector<needed_task> needed_tasks(const canvas& flow, const task_registry& tasks) {
  std::vector<needed_task> out;
  collect(flow, tasks, out);
  return out;
}

std::vector<needed_task> unserved_needs(const std::vector<value::map>& answers, const std::vector<needed_task>& needs) {
  std::vector<needed_task> out;
  for (const auto& t : needs) {
    bool served = std::any_of(answers.begin(), answers.end(), [&](const value::map& a) {
      auto role = a.find("role");
      return role != a.end() && role->second.is_string() && role->second.as_string() == "worker" && serves(a, t);
    });
    if (!served) {
      out.push_back(t);
    }
  }
  return out;
}

std::string unserved_warning(const needed_task& t) {
  return "no live worker serves task " + t.task + (t.queue ? " in queue " + *t.queue : std::string{" in any queue"}) +
         "; the workflow waits for one";
}

void warn_unserved(const detail::cluster_options& opts, const std::vector<needed_task>& needs,
                   std::chrono::milliseconds window) {
  auto bus = connect_client(opts, "trellis-submit-check");
  if (!bus) {
    log::write(log::level::warn,
               "cannot tell whether live workers serve the workflow's tasks: " + to_string(bus.error()));
    return;
  }
  detail::control_request request;
  request.op = detail::control_op::inspect;
  auto replies = (*bus)->gather_control(detail::subject_verb(request.op), detail::encode(request), window);
  if (!replies) {
    log::write(log::level::warn,
               "cannot tell whether live workers serve the workflow's tasks: " + to_string(replies.error()));
    return;
  }
  std::vector<value::map> answers;
  for (const auto& bytes : *replies) {
    if (auto body = detail::decode_control_reply(bytes); body && body->is_map()) {
      answers.push_back(std::move(*body).as_map());
    }
  }
  // Where the queue is known here (the signature's, or this binary's
  // registration) the workflow's tasks are checked at once.
  std::vector<needed_task> known;
  std::copy_if(needs.begin(), needs.end(), std::back_inserter(known), [](const needed_task& t) { return t.queue; });
  auto warnings = unserved_needs(answers, known);
  // The others by what waits in the stream: the dispatcher routed them
  // (decision 0022's census, as `inspect` reads it).
  if (auto census = (*bus)->queued_tasks()) {
    for (const auto& u : unserved_tasks(answers, *census)) {
      auto ours = std::find_if(needs.begin(), needs.end(), [&](const needed_task& t) {
        return t.task == u.task || detail::subject_space::task_token(t.task) == u.task;
      });
      needed_task t{ours != needs.end() ? ours->task : u.task, u.queue};
      if (ours != needs.end() && std::find(warnings.begin(), warnings.end(), t) == warnings.end()) {
        warnings.push_back(std::move(t));
      }
    }
  } else {
    log::write(log::level::warn, "cannot tell which queued tasks no live worker serves: " + to_string(census.error()));
  }
  for (const auto& t : warnings) {
    log::write(log::level::warn, unserved_warning(t));
  }
}

}  // namespace trellis::cli
