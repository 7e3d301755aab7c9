#include "trellis/task.hpp"

#include <set>

namespace trellis {

namespace detail {

namespace {

/// A keyword from the wire, quoted and cut short: it may be megabytes long.
std::string quoted_name(const std::string& name) {
  return "'" + (name.size() > 60 ? name.substr(0, 60) + "..." : name) + "'";
}

std::string joined(const std::vector<param>& params) {
  std::string out;
  for (const auto& p : params) {
    out += (out.empty() ? "" : ", ") + p.name;
  }
  return out;
}

}  // namespace

value::array bind_arguments(const std::string& task, const std::vector<param>& params, const value::array& args,
                            const value::map& kwargs) {
  if (args.size() > params.size()) {
    throw task_rejected(task + " takes " + std::to_string(params.size()) + " argument(s) (" + joined(params) +
                        "), got " + std::to_string(args.size()) + " positional");
  }
  std::vector<std::optional<value>> bound(params.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    bound[i] = args[i];
  }
  for (const auto& [name, v] : kwargs) {
    std::size_t i = 0;
    while (i < params.size() && params[i].name != name) {
      ++i;
    }
    if (i == params.size()) {
      throw task_rejected(task + ": unknown keyword argument " + quoted_name(name) + " (its parameters are " +
                          joined(params) + ")");
    }
    if (bound[i]) {
      throw task_rejected(task + ": argument '" + params[i].name + "' given twice, by position (argument " +
                          std::to_string(i + 1) + ") and by keyword");
    }
    bound[i] = v;
  }
  std::string missing;
  value::array out;
  out.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!bound[i] && params[i].default_value) {
      bound[i] = params[i].default_value;
    }
    if (!bound[i]) {
      missing += (missing.empty() ? "'" : ", '") + params[i].name + "'";
      continue;
    }
    out.push_back(std::move(*bound[i]));
  }
  if (!missing.empty()) {
    throw task_rejected(task + ": missing argument " + missing);
  }
  return out;
}

void check_positional(const std::string& task, std::size_t arity, const value::array& args, const value::map& kwargs) {
  if (!kwargs.empty()) {
    throw task_rejected(task + ": unknown keyword argument " + quoted_name(kwargs.begin()->first) + " (" + task +
                        " takes positional arguments only: its parameters were not named when it was registered)");
  }
  if (args.size() != arity) {
    throw task_rejected(task + " takes " + std::to_string(arity) + " argument(s), got " + std::to_string(args.size()));
  }
}

void check_params(const std::string& task, const std::vector<param>& params, std::size_t arity) {
  if (params.size() != arity) {
    throw usage_error("task '" + task + "': " + std::to_string(params.size()) + " parameter name(s) for a handler of " +
                      std::to_string(arity) + " argument(s) after its task_context");
  }
  std::set<std::string> seen;
  const param* defaulted = nullptr;
  for (const auto& p : params) {
    if (p.name.empty()) {
      throw usage_error("task '" + task + "': a parameter name must not be empty");
    }
    if (!seen.insert(p.name).second) {
      throw usage_error("task '" + task + "': parameter '" + p.name + "' is named twice");
    }
    if (p.default_value) {
      defaulted = &p;
    } else if (defaulted != nullptr) {
      throw usage_error("task '" + task + "': parameter '" + p.name + "' has no default but follows '" +
                        defaulted->name + "', which has one; only trailing parameters take defaults");
    }
  }
}

}  // namespace detail

registered_task& task_ref::entry() {
  auto* t = registry_->find(name_);
  if (t == nullptr) {
    throw usage_error("task '" + name_ + "' is not registered");
  }
  return *t;
}

task_ref& task_ref::queue(std::string name) {
  if (name.empty()) {
    throw usage_error("task '" + name_ + "': queue name must not be empty");
  }
  entry().defaults.queue = std::move(name);
  return *this;
}

task_ref& task_ref::retry(retry_policy policy) {
  entry().defaults.retry = policy;
  return *this;
}

namespace {

void check_limit(const std::string& task, const char* what, std::chrono::milliseconds limit) {
  if (limit.count() < 1 || limit.count() > max_duration_ms) {
    throw usage_error("task '" + task + "': " + what + " must be from 1 to " + std::to_string(max_duration_ms) +
                      " ms, got " + std::to_string(limit.count()));
  }
}

}  // namespace

task_ref& task_ref::time_limit(std::chrono::milliseconds limit) {
  check_limit(name_, "time_limit", limit);
  entry().defaults.time_limit = limit;
  return *this;
}

task_ref& task_ref::soft_time_limit(std::chrono::milliseconds limit) {
  check_limit(name_, "soft_time_limit", limit);
  entry().defaults.soft_time_limit = limit;
  return *this;
}

task_ref& task_ref::rate_limit(std::string_view rate) {
  auto parsed = parse_rate_limit(rate);
  if (!parsed) {
    throw usage_error("task '" + name_ + "': rate_limit must be " + rate_limit_expectation + ", got \"" +
                      std::string{rate.substr(0, 60)} + "\"");
  }
  entry().defaults.rate_limit = *parsed;
  return *this;
}

task_ref task_registry::add_raw(std::string name, raw_handler handler) {
  if (name.empty()) {
    throw usage_error("a task name must not be empty");
  }
  if (!handler) {
    throw usage_error("task '" + name + "' has an empty handler");
  }
  if (tasks_.count(name) != 0) {
    throw usage_error("task '" + name + "' is registered twice");
  }
  registered_task entry{name, std::move(handler), task_defaults{}, {}};
  tasks_.emplace(name, std::move(entry));
  return task_ref{*this, std::move(name)};
}

const registered_task* task_registry::find(const std::string& name) const {
  auto i = tasks_.find(name);
  return i == tasks_.end() ? nullptr : &i->second;
}

registered_task* task_registry::find(const std::string& name) {
  auto i = tasks_.find(name);
  return i == tasks_.end() ? nullptr : &i->second;
}

std::vector<std::string> task_registry::names() const {
  std::vector<std::string> out;
  out.reserve(tasks_.size());
  for (const auto& entry : tasks_) {
    out.push_back(entry.first);
  }
  return out;
}

namespace {

expected<void> check_at(const value& v, const task_registry& tasks, const std::string& path) {
  if (!v.is_map()) {
    return {};  // shape errors are the parser's to report
  }
  const auto& m = v.as_map();
  // Callbacks (`options.link`, `options.link_error`: a canvas or a list) on
  // any canvas name tasks too.
  if (auto o = m.find("options"); o != m.end() && o->second.is_map()) {
    for (const char* key : {"link", "link_error"}) {
      auto cb = o->second.as_map().find(key);
      if (cb == o->second.as_map().end()) {
        continue;
      }
      auto at = path + ".options." + key;
      if (cb->second.is_array()) {
        for (std::size_t i = 0; i < cb->second.as_array().size(); ++i) {
          if (auto r = check_at(cb->second.as_array()[i], tasks, at + "[" + std::to_string(i) + "]"); !r) {
            return r;
          }
        }
      } else if (auto r = check_at(cb->second, tasks, at); !r) {
        return r;
      }
    }
  }
  if (auto t = m.find("task"); t != m.end()) {
    if (t->second.is_string() && tasks.find(t->second.as_string()) == nullptr) {
      return error{errc::unknown_task, path + ": unknown task '" + t->second.as_string() + "'"};
    }
    return {};
  }
  auto each = [&](const value& list, const std::string& prefix) -> expected<void> {
    if (!list.is_array()) {
      return {};
    }
    for (std::size_t i = 0; i < list.as_array().size(); ++i) {
      if (auto r = check_at(list.as_array()[i], tasks, prefix + "[" + std::to_string(i) + "]"); !r) {
        return r;
      }
    }
    return {};
  };
  for (const char* key : {"map", "starmap", "chunks"}) {
    if (auto f = m.find(key); f != m.end()) {
      if (!f->second.is_map()) {
        return {};
      }
      const auto& spec = f->second.as_map();
      auto t = spec.find("task");
      if (t != spec.end() && t->second.is_string() && tasks.find(t->second.as_string()) == nullptr) {
        return error{errc::unknown_task, path + "." + key + ": unknown task '" + t->second.as_string() + "'"};
      }
      return {};
    }
  }
  if (auto c = m.find("chain"); c != m.end()) {
    return each(c->second, path + ".chain");
  }
  if (auto g = m.find("group"); g != m.end()) {
    return each(g->second, path + ".group");
  }
  if (auto c = m.find("chord"); c != m.end() && c->second.is_map()) {
    const auto& chord = c->second.as_map();
    if (auto h = chord.find("header"); h != chord.end()) {
      if (auto r = each(h->second, path + ".chord.header"); !r) {
        return r;
      }
    }
    if (auto b = chord.find("body"); b != chord.end()) {
      return check_at(b->second, tasks, path + ".chord.body");
    }
  }
  return {};
}

}  // namespace

namespace detail {

task_result<value> run_chunk(const raw_handler& handler, task_context& ctx, const value::array& args) {
  if (args.size() != 1 || !args.front().is_array()) {
    throw task_rejected("chunk of " + ctx.task() + ": expected one list of argument lists, got " +
                        std::to_string(args.size()) + " arguments");
  }
  const auto& calls = args.front().as_array();
  value::array results;
  results.reserve(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (!calls[i].is_array()) {
      throw task_rejected("chunk of " + ctx.task() + ": item " + std::to_string(i) + " is a " +
                          std::string{to_string(calls[i].type())} + ", not a list of arguments");
    }
    auto r = handler(ctx, calls[i].as_array());
    if (r.is_retry()) {
      return r.retry();
    }
    if (r.is_replace()) {
      // One message stands for many calls: there is no single step that
      // the replacement could take the place of.
      throw task_error("replace_in_chunk", "chunk of " + ctx.task() + ": call " + std::to_string(i) +
                                               " asked to be replaced, which a call in a chunk cannot be");
    }
    results.push_back(std::move(r.result()));
  }
  return value(std::move(results));
}

}  // namespace detail

expected<void> check_tasks_known(const value& workflow, const task_registry& tasks) {
  return check_at(workflow, tasks, "$");
}

void task_context::report_progress(std::int64_t done, std::optional<std::int64_t> total, std::string message) {
  if (done < 0 || (total && *total < 0)) {
    throw usage_error("task '" + task_ + "': report_progress(" + std::to_string(done) + ", " +
                      (total ? std::to_string(*total) : std::string{"none"}) +
                      "): done and total must not be negative");
  }
  progress_.done = done;
  progress_.total = total;
  progress_.message = clip_progress_message(std::move(message));
  if (sink_) {
    sink_->report(progress_);
  }
}

void task_context::set_state(const std::string& name) {
  if (auto problem = custom_state_problem(name)) {
    throw usage_error("task '" + task_ + "': set_state: " + *problem);
  }
  progress_.state = name;
  if (sink_) {
    sink_->report(progress_);
  }
}

void task_context::clear_state() {
  if (progress_.state.empty()) {
    return;
  }
  progress_.state.clear();
  if (sink_) {
    sink_->report(progress_);
  }
}

}  // namespace trellis
