#include "control_commands.hpp"

#include "cli_output.hpp"
#include "inspect_report.hpp"

#include "trellis/client_core.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/log.hpp"
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

/// How long a submission waits for a dispatcher to commit it (and, while
/// none listens, for one to appear).
constexpr auto submit_timeout = std::chrono::seconds{30};

/// Prints `e`; an answer that cannot be read is the dispatcher's fault, as
/// one that never came (exit 4).
int fail(const error& e) {
  std::cerr << "error: " << to_string(e) << '\n';
  return e.code() == errc::malformed_envelope ? exit_broker : exit_code_for(e.code());
}

}  // namespace

expected<std::shared_ptr<detail::cluster_bus>> connect_client(const detail::cluster_options& opts,
                                                              const std::string& client_name) {
  // Credentials, TLS and the signing key come with the options.
  auto cfg = detail::nats_config_for(opts, client_name);
  cfg.declare_streams = false;  // a client: see cluster_client::connect
  return detail::cluster_bus::connect(std::move(cfg));
}

expected<std::unique_ptr<client>> connect_trellis_client(const detail::cluster_options& opts,
                                                         const std::string& client_name) {
  return detail::connect_client(opts, client_name, submit_timeout, control_timeout);
}

int report_outcome(const client_handle& handle, wait_limit& limit, progress_line* progress,
                   const slow_wait_check* slow) {
  // Without --timeout-ms no deadline, as `run`: the workflow may
  // legitimately take long. The progress line asks about once a second.
  auto result = wait_within(handle, limit, progress, std::chrono::seconds{1}, slow);
  if (result) {
    std::cout << outcome_line(handle.id(), node_state::success, *result, value{}) << std::endl;
    return exit_success;
  }
  switch (result.error().code()) {
    case errc::timeout:
      return report_timed_out(handle.id(), limit,
                              "it goes on in the cluster (follow it with: status " + handle.id() + " --broker URL)");
    case errc::workflow_failed:
    case errc::revoked:
      // Known to the handle now: neither asks the dispatcher.
      std::cout << outcome_line(handle.id(), handle.state(), value{}, handle.error_details()) << std::endl;
      return exit_workflow_failed;
    default:
      return fail(result.error());
  }
}

int status_over_broker(const std::string& id, const detail::cluster_options& opts, output_format format) {
  auto c = connect_trellis_client(opts, "trellis-status");
  if (!c) {
    return fail(c.error());
  }
  auto doc = (*c)->status(id);
  if (!doc) {
    if (doc.error().code() == errc::not_found) {
      std::cerr << "error: no workflow with id " << id << " (namespace " << opts.ns << ", partition "
                << detail::partition_of(id, opts.partitions) << ")\n";
      return exit_bad_input;
    }
    return fail(doc.error());
  }
  if (!doc->is_map()) {
    std::cerr << "error: the dispatcher's status answer is not a status document\n";
    return exit_broker;
  }
  std::cout << (format == output_format::table ? status_table(doc->as_map()) : status_line(doc->as_map()) + '\n')
            << std::flush;
  return exit_success;
}

int dlq_list_over_broker(int partition, const detail::cluster_options& opts, output_format format) {
  auto c = connect_trellis_client(opts, "trellis-dlq");
  if (!c) {
    return fail(c.error());
  }
  auto letters = (*c)->dead_letters(partition);
  if (!letters) {
    return fail(letters.error());
  }
  if (format == output_format::table) {
    std::cout << dead_letter_table(*letters);
  } else {
    for (const auto& row : *letters) {
      std::cout << to_json(row) << '\n';
    }
  }
  std::cout.flush();
  return exit_success;
}

int dlq_replay_over_broker(std::int64_t letter, int partition, const detail::cluster_options& opts,
                           std::optional<std::int64_t> timeout_ms) {
  auto c = connect_trellis_client(opts, "trellis-dlq");
  if (!c) {
    return fail(c.error());
  }
  auto handle = (*c)->replay_dead_letter(letter, partition);
  if (!handle) {
    return fail(handle.error());
  }
  announce_workflow(handle->id(), "reopened by the replay of dead letter " + std::to_string(letter));
  wait_limit limit{timeout_ms};
  return report_outcome(*handle, limit);
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
      log::warn() << "ignoring an unreadable inspect answer: "
                  << (body ? std::string{"not a map"} : to_string(body.error()));
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
    log::warn() << "cannot tell which queued tasks no live worker serves: " << to_string(census.error());
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
      log::warn() << "ignoring an unreadable metrics answer: "
                  << (body ? std::string{"not a map of role, name and text"} : to_string(body.error()));
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
      log::warn() << "ignoring the metrics of " << a.name << ": " << ok.error().message();
    }
  }
  std::cout << detail::in_format(merged.text(), format) << std::flush;
  return exit_success;
}

int revoke_over_broker(const std::string& id, const revoke_options& what, const detail::cluster_options& opts) {
  auto c = connect_trellis_client(opts, "trellis-revoke");
  if (!c) {
    return fail(c.error());
  }
  auto body = (*c)->revoke(id, what);
  if (!body) {
    if (body.error().code() == errc::not_found) {
      std::cerr << "error: no workflow with id " << id << " (namespace " << opts.ns << ", partition "
                << detail::partition_of(id, opts.partitions) << "); nothing was revoked\n";
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

}  // namespace trellis::cli
