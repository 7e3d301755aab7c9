#include "control_commands.hpp"

#include "cli_output.hpp"
#include "inspect_report.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/prometheus_merge.hpp"
#include "trellis/transport/partition.hpp"

#include <algorithm>
#include <iostream>
#include <utility>
#include <vector>

namespace trellis::cli {

namespace {

/// How long a control request waits for its dispatcher (and, while none
/// listens on the partition, for one to appear).
constexpr auto control_timeout = std::chrono::seconds{10};

/// Sends `request` to the dispatcher of `partition`; the reply's body or
/// its error.
expected<value> ask_dispatcher(detail::cluster_bus& bus, const detail::control_request& request, int partition,
                               std::chrono::milliseconds timeout = control_timeout) {
  auto reply = bus.request_control(detail::subject_verb(request.op), partition, detail::encode(request), timeout);
  if (!reply) {
    return reply.error();
  }
  return detail::decode_control_reply(*reply);
}

int fail(const error& e) {
  std::cerr << "error: " << to_string(e) << '\n';
  return exit_code_for(e.code());
}

/// A finished workflow's outcome line, and whether it succeeded.
struct final_outcome {
  std::string line;
  bool success = false;
};

/// The outcome of a status document or a done notice, if it is final.
std::optional<final_outcome> terminal_line(const std::string& id, const value& doc) {
  if (!doc.is_map()) {
    return std::nullopt;
  }
  const auto& m = doc.as_map();
  auto field = [&](const char* key) { return m.count(key) != 0 ? m.at(key) : value{}; };
  auto name = field("state");
  auto state = name.is_string() ? node_state_from_string(name.as_string()) : std::nullopt;
  if (!state || !is_terminal(*state)) {
    return std::nullopt;
  }
  return final_outcome{outcome_line(id, *state, field("result"), field("error")), *state == node_state::success};
}

}  // namespace

expected<std::shared_ptr<detail::cluster_bus>> connect_client(const detail::cluster_options& opts,
                                                              const std::string& client_name) {
  // Credentials, TLS and the signing key come with the options.
  auto cfg = detail::nats_config_for(opts, client_name);
  cfg.declare_streams = false;  // a client: see cluster_client::connect
  return detail::cluster_bus::connect(std::move(cfg));
}

int status_over_broker(const std::string& id, const detail::cluster_options& opts) {
  auto bus = connect_client(opts, "trellis-status");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::status;
  request.workflow_id = id;
  auto partition = detail::partition_of(id, opts.partitions);
  auto doc = ask_dispatcher(**bus, request, partition);
  if (!doc) {
    if (doc.error().code() == errc::not_found) {
      std::cerr << "error: no workflow with id " << id << " (namespace " << opts.ns << ", partition " << partition
                << ")\n";
      return exit_bad_input;
    }
    return fail(doc.error());
  }
  if (!doc->is_map()) {
    std::cerr << "error: the dispatcher's status answer is not a map\n";
    return exit_broker;
  }
  std::cout << status_line(doc->as_map()) << std::endl;
  return exit_success;
}

int dlq_list_over_broker(int partition, const detail::cluster_options& opts) {
  auto bus = connect_client(opts, "trellis-dlq");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::dlq_list;
  auto body = ask_dispatcher(**bus, request, partition);
  if (!body) {
    return fail(body.error());
  }
  if (!body->is_map() || body->as_map().count("letters") == 0 || !body->as_map().at("letters").is_array()) {
    std::cerr << "error: the dispatcher's dead-letter answer holds no list of letters\n";
    return exit_broker;
  }
  for (const auto& row : body->as_map().at("letters").as_array()) {
    std::cout << to_json(row) << '\n';
  }
  std::cout.flush();
  return exit_success;
}

int dlq_replay_over_broker(std::int64_t letter, int partition, const detail::cluster_options& opts) {
  auto bus = connect_client(opts, "trellis-dlq");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::dlq_replay;
  request.letter = letter;
  auto body = ask_dispatcher(**bus, request, partition);
  if (!body) {
    return fail(body.error());
  }
  if (!body->is_map() || body->as_map().count("id") == 0 || !body->as_map().at("id").is_string()) {
    std::cerr << "error: the dispatcher's replay answer names no workflow\n";
    return exit_broker;
  }
  auto id = body->as_map().at("id").as_string();
  // Subscribed after the replay: the workflow may already have finished, and
  // the waiter's first status request covers exactly that.
  auto waiter = outcome_waiter::watch(**bus, id, opts);
  if (!waiter) {
    return fail(waiter.error());
  }
  return waiter->report(**bus);
}

int inspect_over_broker(const detail::cluster_options& opts, std::chrono::milliseconds window) {
  auto bus = connect_client(opts, "trellis-inspect");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::inspect;
  auto replies = (*bus)->gather_control(detail::subject_verb(request.op), detail::encode(request), window);
  if (!replies) {
    return fail(replies.error());
  }
  std::vector<value::map> answers;
  for (const auto& bytes : *replies) {
    auto body = detail::decode_control_reply(bytes);
    if (!body || !body->is_map()) {
      std::cerr << "trellis: ignoring an unreadable inspect answer: "
                << (body ? std::string{"not a map"} : to_string(body.error())) << '\n';
      continue;
    }
    answers.push_back(std::move(*body).as_map());
  }
  auto key = [](const value::map& m, const char* k) {
    auto i = m.find(k);
    return i != m.end() && i->second.is_string() ? i->second.as_string() : std::string{};
  };
  // Workers before dispatchers ("worker" > "dispatcher"), then by name.
  std::sort(answers.begin(), answers.end(), [&](const value::map& a, const value::map& b) {
    return std::make_pair(key(b, "role"), key(a, "name")) < std::make_pair(key(a, "role"), key(b, "name"));
  });
  // Then the tasks that wait for a worker: queued on a subject no live
  // worker reads (decision 0022).
  std::vector<unserved_task> unserved;
  if (auto census = (*bus)->queued_tasks()) {
    unserved = unserved_tasks(answers, *census);
  } else {
    std::cerr << "trellis: cannot tell which queued tasks no live worker serves: " << to_string(census.error())
              << '\n';
  }
  for (auto& a : answers) {
    std::cout << to_json(value(std::move(a))) << '\n';
  }
  for (const auto& t : unserved) {
    std::cout << to_json(unserved_line(t)) << '\n';
  }
  std::cout.flush();
  return exit_success;
}

int metrics_over_broker(const detail::cluster_options& opts, std::chrono::milliseconds window,
                        metrics_format format) {
  auto bus = connect_client(opts, "trellis-metrics");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::metrics;
  auto replies = (*bus)->gather_control(detail::subject_verb(request.op), detail::encode(request), window);
  if (!replies) {
    return fail(replies.error());
  }
  struct answer {
    std::string role;
    std::string name;
    std::string text;
  };
  std::vector<answer> answers;
  for (const auto& bytes : *replies) {
    auto body = detail::decode_control_reply(bytes);
    auto field = [&](const char* k) -> const value* {
      if (!body || !body->is_map()) {
        return nullptr;
      }
      auto i = body->as_map().find(k);
      return i != body->as_map().end() && i->second.is_string() ? &i->second : nullptr;
    };
    if (!field("role") || !field("name") || !field("text")) {
      std::cerr << "trellis: ignoring an unreadable metrics answer: "
                << (body ? std::string{"not a map of role, name and text"} : to_string(body.error())) << '\n';
      continue;
    }
    answers.push_back(answer{field("role")->as_string(), field("name")->as_string(), field("text")->as_string()});
  }
  // As inspect: workers before dispatchers, then by name, so that the output
  // does not depend on the order the answers arrived in.
  std::sort(answers.begin(), answers.end(), [](const answer& a, const answer& b) {
    return std::make_pair(b.role, a.name) < std::make_pair(a.role, b.name);
  });
  detail::prometheus_merge merged;
  for (const auto& a : answers) {
    if (auto ok = merged.add(a.text, "process", a.name); !ok) {
      std::cerr << "trellis: ignoring the metrics of " << a.name << ": " << ok.error().message() << '\n';
    }
  }
  std::cout << detail::in_format(merged.text(), format) << std::flush;
  return exit_success;
}

int revoke_over_broker(const std::string& id, const revoke_options& what, const detail::cluster_options& opts) {
  auto bus = connect_client(opts, "trellis-revoke");
  if (!bus) {
    return fail(bus.error());
  }
  detail::control_request request;
  request.op = detail::control_op::revoke;
  request.workflow_id = id;
  request.node = what.node;
  request.terminate = what.terminate;
  auto partition = detail::partition_of(id, opts.partitions);
  auto body = ask_dispatcher(**bus, request, partition);
  if (!body) {
    if (body.error().code() == errc::not_found) {
      std::cerr << "error: no workflow with id " << id << " (namespace " << opts.ns << ", partition " << partition
                << "); nothing was revoked\n";
      return exit_bad_input;
    }
    return fail(body.error());
  }
  auto line = revoke_line(id, *body);
  if (!line) {
    std::cerr << "error: the dispatcher's revoke answer is neither an outcome nor a list of revoked nodes\n";
    return exit_broker;
  }
  std::cout << *line << std::endl;
  return exit_success;
}

outcome_waiter::outcome_waiter(std::shared_ptr<shared> s, std::string id, int partition)
    : state_(std::move(s)), id_(std::move(id)), partition_(partition) {}

expected<outcome_waiter> outcome_waiter::watch(detail::cluster_bus& bus, const std::string& workflow_id,
                                               const detail::cluster_options& opts) {
  auto s = std::make_shared<shared>();
  // The callbacks hold the state, not the waiter: they may run until the
  // connection is gone, whatever happens to the waiter.
  auto watching = bus.watch_done(workflow_id, [s](std::string bytes) {
    {
      std::lock_guard<std::mutex> guard{s->mutex};
      if (!s->notice) {
        s->notice = std::move(bytes);
      }
    }
    s->changed.notify_all();
  });
  if (!watching) {
    return watching.error();
  }
  bus.on_reconnect([s] {
    {
      std::lock_guard<std::mutex> guard{s->mutex};
      s->ask = true;
    }
    s->changed.notify_all();
  });
  return outcome_waiter{s, workflow_id, detail::partition_of(workflow_id, opts.partitions)};
}

int outcome_waiter::report(detail::cluster_bus& bus) {
  detail::control_request request;
  request.op = detail::control_op::status;
  request.workflow_id = id_;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock{state_->mutex};
      state_->changed.wait_for(lock, poll, [&] { return state_->notice.has_value() || state_->ask; });
      if (state_->notice) {
        auto note =
            detail::unpack_from_string(*state_->notice, state_->notice->size(), defaults::max_stored_value_depth);
        if (note && note->is_map() && note->as_map().count("result_too_large") != 0) {
          // Finished, with a result larger than a notice: ask for it.
          state_->notice.reset();
          state_->ask = true;
          continue;
        }
        auto line = note ? terminal_line(id_, *note) : std::nullopt;
        if (!line) {
          std::cerr << "error: unreadable completion notice for workflow " << id_ << '\n';
          return exit_broker;
        }
        std::cout << line->line << std::endl;
        return line->success ? exit_success : exit_workflow_failed;
      }
      state_->ask = false;
    }
    // The notice may be lost (core NATS); the dispatcher's store is not. An
    // unanswered request (dispatcher restarting, broker away) only means
    // asking again later.
    auto doc = ask_dispatcher(bus, request, partition_);
    if (!doc) {
      continue;
    }
    if (auto line = terminal_line(id_, *doc)) {
      std::cout << line->line << std::endl;
      return line->success ? exit_success : exit_workflow_failed;
    }
  }
}

}  // namespace trellis::cli
