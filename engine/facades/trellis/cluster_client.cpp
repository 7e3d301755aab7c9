#include "trellis/cluster_client.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/envelope.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/partition.hpp"

namespace trellis::detail {

namespace {

// A completion notice carries the workflow's result, which may be large and
// deep (defaults::max_stored_value_depth).
constexpr std::size_t max_notice_depth = defaults::max_stored_value_depth;
constexpr std::size_t max_answer_depth = 16;

}  // namespace

expected<std::unique_ptr<cluster_client>> cluster_client::connect(const cluster_options& opts,
                                                                  const std::string& client_name) {
  // Credentials, TLS and the signing key come with the options.
  auto cfg = nats_config_for(opts, client_name);
  // A client only sends core NATS requests: the streams are the cluster's
  // business, and declaring them can outlast the API timeout under load.
  cfg.declare_streams = false;
  auto bus = cluster_bus::connect(std::move(cfg));
  if (!bus) {
    return bus.error();
  }
  return std::unique_ptr<cluster_client>{new cluster_client{std::move(*bus), opts.partitions, opts.limits}};
}

cluster_client::cluster_client(std::shared_ptr<cluster_bus> bus, int partitions, canvas_limits limits)
    : partitions_(partitions), limits_(limits), bus_(std::move(bus)) {}

cluster_client::~cluster_client() {
  // The bus first: the connection's teardown drains the notice
  // subscriptions, whose callbacks use the members above.
  bus_.reset();
}

expected<std::string> cluster_client::submit(const canvas& flow, bool watch, std::chrono::milliseconds timeout) {
  return submit_as(new_workflow_id(), flow, watch, timeout);
}

expected<value> cluster_client::ask(const control_request& request, int partition,
                                    std::chrono::milliseconds timeout) {
  auto reply = bus_->request_control(subject_verb(request.op), partition, encode(request), timeout);
  if (!reply) {
    return reply.error();
  }
  return decode_control_reply(*reply);
}

expected<std::string> cluster_client::submit_as(const std::string& workflow_id, const canvas& flow, bool watch,
                                                std::chrono::milliseconds timeout,
                                                const std::optional<std::string>& submit_key) {
  // Refused here already, with the dispatcher's words: no NATS queue
  // honours a priority.
  if (auto ok = check_priorities_honoured(flow, false); !ok) {
    return ok.error();
  }
  auto e = submission_envelope(workflow_id, flow, submit_key);
  auto encoded = encode_submission(e, limits_.max_submission_bytes);
  if (!encoded) {
    return encoded.error();
  }
  if (watch) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      watched_.emplace(e.workflow_id, std::nullopt);
    }
    // Subscribed before the submission goes out, so the notice cannot be missed.
    auto watching = bus_->watch_done(e.workflow_id, [this, id = e.workflow_id](std::string bytes) {
      {
        std::lock_guard<std::mutex> guard{mutex_};
        auto w = watched_.find(id);
        if (w == watched_.end() || w->second) {
          return;  // a duplicate notice, or one nobody waits for any more
        }
        w->second = std::move(bytes);
      }
      done_cv_.notify_all();
    });
    if (!watching) {
      bus_->unwatch_done(e.workflow_id);
      std::lock_guard<std::mutex> guard{mutex_};
      watched_.erase(e.workflow_id);
      return watching.error();
    }
  }
  auto forget = [&] {
    if (watch) {
      bus_->unwatch_done(e.workflow_id);
      std::lock_guard<std::mutex> guard{mutex_};
      watched_.erase(e.workflow_id);
    }
  };
  // The dispatcher owning this workflow's partition takes it.
  auto reply = bus_->request_submission(*encoded, timeout, partition_of(e.workflow_id, partitions_));
  if (!reply) {
    forget();
    return reply.error();
  }
  auto answer = unpack_from_string(*reply, reply->size(), max_answer_depth);
  if (!answer || !answer->is_map()) {
    forget();
    return error{errc::malformed_envelope, "unreadable answer from the dispatcher"};
  }
  const auto& m = answer->as_map();
  if (auto err = m.find("error"); err != m.end()) {
    forget();
    return error{errc::invalid_workflow, "the dispatcher refused the workflow: " + to_json(err->second)};
  }
  auto id = m.find("id");
  if (id == m.end() || !id->second.is_string()) {
    forget();
    return error{errc::malformed_envelope, "the dispatcher's answer names no workflow"};
  }
  return id->second.as_string();
}

expected<workflow_outcome> cluster_client::wait(const std::string& id, std::chrono::milliseconds timeout) {
  std::string note;
  {
    std::unique_lock<std::mutex> lock{mutex_};
    auto w = watched_.find(id);
    if (w == watched_.end()) {
      return error{errc::not_found, "workflow " + id + " is not watched by this client"};
    }
    if (!done_cv_.wait_for(lock, timeout, [&] { return w->second.has_value(); })) {
      return error{errc::timeout,
                   "workflow " + id + " did not finish within " + std::to_string(timeout.count()) + " ms; it goes on"};
    }
    note = std::move(*w->second);
    watched_.erase(w);
  }
  // One subscription (and nats.c delivery thread) per watched workflow: end
  // it, so a client that waits for thousands does not keep thousands.
  bus_->unwatch_done(id);
  auto outcome = unpack_from_string(note, note.size(), max_notice_depth);
  if (!outcome || !outcome->is_map()) {
    return error{errc::malformed_envelope, "unreadable completion notice for workflow " + id};
  }
  if (outcome->as_map().count("result_too_large") != 0) {
    // A result larger than a notice: the dispatcher's status has it (its
    // answer travels in pieces).
    control_request request;
    request.op = control_op::status;
    request.workflow_id = id;
    auto reply =
        bus_->request_control(subject_verb(request.op), partition_of(id, partitions_), encode(request), timeout);
    if (!reply) {
      return reply.error();
    }
    auto doc = decode_control_reply(*reply);
    if (!doc) {
      return doc.error();
    }
    outcome = std::move(*doc);
    if (!outcome->is_map()) {
      return error{errc::malformed_envelope, "unreadable status answer for workflow " + id};
    }
  }
  auto& o = outcome->as_map();
  auto field = [&](const char* k) { return o.count(k) != 0 ? std::move(o.at(k)) : value{}; };
  auto state_name = field("state");
  auto state = state_name.is_string() ? node_state_from_string(state_name.as_string()) : std::nullopt;
  if (!state) {
    return error{errc::malformed_envelope, "completion notice without a state for workflow " + id};
  }
  return workflow_outcome{id, *state, field("result"), field("error")};
}

}  // namespace trellis::detail
