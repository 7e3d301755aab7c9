#include "trellis/client.hpp"

#include "trellis/defaults.hpp"

#include "trellis/client_core.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/outcome_result.hpp"
#include "trellis/signing.hpp"
#include "trellis/store/workflow_pages.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/partition.hpp"
#include "trellis/workflow_listing.hpp"

#include <utility>

namespace trellis {

namespace {

/// `opts` as the cluster options of a client, checked as the command line
/// checks its settings (cluster_settings.cpp). Errors name the field,
/// never a secret.
expected<detail::cluster_options> cluster_options_of(const client_options& opts) {
  auto bad = [](std::string what) { return error{errc::invalid_config, std::move(what)}; };
  if (opts.broker_urls.empty()) {
    return bad("broker_urls: name at least one NATS server, e.g. nats://127.0.0.1:4222");
  }
  for (const auto& url : opts.broker_urls) {
    if (url.empty()) {
      return bad("broker_urls: an empty URL");
    }
  }
  if (opts.ns.empty()) {
    return bad("ns: the namespace must not be empty");
  }
  if (opts.partitions < 1 || opts.partitions > 1024) {
    return bad("partitions: must be from 1 to 1024, got " + std::to_string(opts.partitions));
  }
  if (!opts.password.empty() && opts.user.empty()) {
    return bad("password is set but no user");
  }
  if (!opts.token.empty() && !opts.user.empty()) {
    return bad("both a user and a token are set; NATS takes one of them");
  }
  if (opts.tls_cert_file.empty() != opts.tls_key_file.empty()) {
    return bad("a TLS client certificate needs its key: set both tls_cert_file and tls_key_file, or neither");
  }
  if (!opts.signing_key_file.empty() && !opts.signing_key.empty()) {
    return bad("both signing_key_file and signing_key are set; give one of them");
  }
  if (opts.submit_timeout.count() <= 0 || opts.request_timeout.count() <= 0) {
    return bad("submit_timeout and request_timeout must be positive");
  }
  if (auto ok = check_size_limits(opts.limits); !ok) {
    return bad("limits." + ok.error().message());
  }
  detail::cluster_options out;
  out.broker_urls = opts.broker_urls;
  out.ns = opts.ns;
  out.partitions = opts.partitions;
  out.limits = opts.limits;
  auto& s = out.security;
  s.user = opts.user;
  s.password = opts.password;
  s.token = opts.token;
  s.creds_file = opts.creds_file;
  s.tls_ca_file = opts.tls_ca_file;
  s.tls_cert_file = opts.tls_cert_file;
  s.tls_key_file = opts.tls_key_file;
  if (!opts.signing_key_file.empty()) {
    auto signer = detail::message_signer::from_file(opts.signing_key_file);
    if (!signer) {
      return bad("signing_key_file: " + signer.error().message());
    }
    s.signer = std::make_shared<const detail::message_signer>(std::move(*signer));
  } else if (!opts.signing_key.empty()) {
    if (opts.signing_key.size() < detail::min_signing_key_bytes) {
      return bad("signing_key: shorter than " + std::to_string(detail::min_signing_key_bytes) + " bytes");
    }
    try {
      s.signer = std::make_shared<const detail::message_signer>(opts.signing_key);
    } catch (const setup_error& e) {
      return bad(std::string{"signing_key: "} + e.what());
    }
  }
  return out;
}

}  // namespace

std::string workflow_id_for_key(const std::string& ns, const std::string& key) {
  return detail::workflow_id_for_key(ns, key);
}

// --- client_handle ---------------------------------------------------------------------

expected<value> client_handle::wait_for(std::chrono::milliseconds timeout) const {
  auto outcome = watch_->wait(timeout);
  if (!outcome) {
    return outcome.error();
  }
  return detail::outcome_result(*outcome);
}

node_state client_handle::state() const {
  auto outcome = watch_->outcome_now();
  return outcome ? outcome->state : node_state::started;
}

value client_handle::error_details() const {
  auto outcome = watch_->outcome_now();
  return outcome && outcome->state != node_state::success ? outcome->error : value{};
}

// --- client ----------------------------------------------------------------------------

expected<std::unique_ptr<client>> client::connect(const client_options& opts) {
  auto cluster = cluster_options_of(opts);
  if (!cluster) {
    return cluster.error();
  }
  return detail::connect_client(*cluster, opts.client_name, opts.submit_timeout, opts.request_timeout);
}

client::client(std::shared_ptr<detail::client_core> core) : core_(std::move(core)) {}

client::~client() = default;

const std::string& client::ns() const noexcept { return core_->ns(); }

int client::partitions() const noexcept { return core_->raw().partitions(); }

expected<client_handle> client::submit(const canvas& flow, std::optional<std::string> key) {
  if (key && key->empty()) {
    // Every empty key would name one workflow of the namespace: refused, as
    // `run --key ""` is.
    return error{errc::invalid_workflow, "an empty submission key names no submission; give a key or none"};
  }
  auto id = key ? detail::workflow_id_for_key(core_->ns(), *key) : detail::new_workflow_id();
  // Watched before the submission goes out, so its notice cannot be missed.
  auto watched = core_->handle(id);
  if (!watched) {
    return watched.error();
  }
  auto committed = core_->raw().submit_as(id, flow, false, core_->submit_timeout(), key);
  if (!committed) {
    return committed.error();
  }
  if (*committed != id) {
    // The key was the dispatcher's already, under another id: that
    // workflow is the one (its first status request covers a notice
    // published before this watch).
    return core_->handle(*committed);
  }
  return watched;
}

expected<client_handle> client::find(const std::string& workflow_id) {
  auto doc = core_->status(workflow_id);
  if (!doc) {
    return doc.error();
  }
  return core_->handle(workflow_id, &*doc);
}

expected<value> client::status(const std::string& workflow_id) { return core_->status(workflow_id); }

expected<value> client::workflows(const workflow_query& query) {
  auto request = detail::list_request(query);
  if (!request) {
    return request.error();
  }
  // Each partition's newest page, merged: a line cut off here is older than
  // the merged page's last line, so the cursor brings it next time.
  std::vector<value> pages;
  for (int p = 0; p < partitions(); ++p) {
    auto page = core_->ask(*request, p);
    if (!page) {
      return page.error();
    }
    pages.push_back(std::move(*page));
  }
  return detail::merge_pages(pages, query.limit);
}

expected<value> client::graph(const std::string& workflow_id) {
  detail::control_request request;
  request.op = detail::control_op::graph;
  request.workflow_id = workflow_id;
  return core_->ask(request, detail::partition_of(workflow_id, partitions()));
}

expected<value> client::revoke(const std::string& workflow_id, revoke_options options) {
  detail::control_request request;
  request.op = detail::control_op::revoke;
  request.workflow_id = workflow_id;
  request.node = options.node;
  request.terminate = options.terminate;
  return core_->ask(request, detail::partition_of(workflow_id, partitions()));
}

expected<std::int64_t> client::prune(std::chrono::milliseconds older_than) {
  if (older_than.count() < 0 || older_than > defaults::max_expires) {
    return error{errc::invalid_config, "prune: older_than must be from 0 to " +
                                           std::to_string(defaults::max_expires.count()) + " ms, got " +
                                           std::to_string(older_than.count())};
  }
  detail::control_request request;
  request.op = detail::control_op::prune;
  request.older_than_ms = older_than.count();
  std::int64_t total = 0;
  for (int p = 0; p < partitions(); ++p) {
    auto body = core_->ask(request, p);
    if (!body) {
      return body.error();
    }
    if (!body->is_map() || body->as_map().count("pruned") == 0 || !body->as_map().at("pruned").is_integer()) {
      return error{errc::malformed_envelope, "partition " + std::to_string(p) + "'s prune answer holds no count"};
    }
    total += body->as_map().at("pruned").as_int();
  }
  return total;
}

expected<void> client::forget(const std::string& workflow_id) {
  detail::control_request request;
  request.op = detail::control_op::forget;
  request.workflow_id = workflow_id;
  auto body = core_->ask(request, detail::partition_of(workflow_id, partitions()));
  if (!body) {
    return body.error();
  }
  return {};
}

expected<value::array> client::dead_letters(int partition) {
  if (partition < 0) {
    return error{errc::invalid_config, "partition " + std::to_string(partition) + " is negative"};
  }
  detail::control_request request;
  request.op = detail::control_op::dlq_list;
  auto body = core_->ask(request, partition);
  if (!body) {
    return body.error();
  }
  if (!body->is_map() || body->as_map().count("letters") == 0 || !body->as_map().at("letters").is_array()) {
    return error{errc::malformed_envelope, "the dispatcher's dead-letter answer holds no list of letters"};
  }
  return body->as_map().at("letters").as_array();
}

expected<client_handle> client::replay_dead_letter(std::int64_t letter, int partition) {
  if (partition < 0) {
    return error{errc::invalid_config, "partition " + std::to_string(partition) + " is negative"};
  }
  detail::control_request request;
  request.op = detail::control_op::dlq_replay;
  request.letter = letter;
  auto body = core_->ask(request, partition);
  if (!body) {
    return body.error();
  }
  if (!body->is_map() || body->as_map().count("id") == 0 || !body->as_map().at("id").is_string()) {
    return error{errc::malformed_envelope, "the dispatcher's replay answer names no workflow"};
  }
  // Watched after the replay: the workflow may have finished already, and
  // the handle's first status request covers exactly that.
  return core_->handle(body->as_map().at("id").as_string(), nullptr, true);
}

}  // namespace trellis
