#include "trellis/transport/nats_config.hpp"

#include "trellis/transport/subjects.hpp"

#include <algorithm>
#include <climits>
#include <sstream>

namespace trellis::detail {

std::string url_redacted(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  auto slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) {
    return url;
  }
  return url.substr(0, start) + "***@" + url.substr(at + 1);
}

std::string urls_redacted(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& u : urls) {
    out += (out.empty() ? "" : ",") + url_redacted(u);
  }
  return out;
}

std::string nats_config::redacted() const {
  std::ostringstream out;
  out << "urls=" << urls_redacted(urls) << " ns=" << ns << " partition=" << partition << " client_name=" << client_name;
  out << " task_queues=[";
  for (std::size_t i = 0; i < task_queues.size(); ++i) {
    out << (i == 0 ? "" : ",") << task_queues[i];
  }
  out << "] all_task_queues=" << (all_task_queues ? "true" : "false")
      << " consume_events=" << (consume_events ? "true" : "false");
  if (!security.user.empty()) {
    out << " user=" << security.user << " password=***";
  }
  if (!security.token.empty()) {
    out << " token=***";
  }
  if (!security.creds_file.empty()) {
    out << " creds_file=" << security.creds_file;
  }
  if (!security.tls_ca_file.empty()) {
    out << " tls_ca_file=" << security.tls_ca_file;
  }
  if (!security.tls_cert_file.empty()) {
    out << " tls_cert_file=" << security.tls_cert_file << " tls_key_file=" << security.tls_key_file;
  }
  out << " signing=" << (security.signer ? "hmac-sha256" : "off");
  out << " ack_wait=" << ack_wait.count() << "ms max_deliver=" << max_deliver << " max_ack_pending=" << max_ack_pending
      << " max_events_in_flight=" << max_events_in_flight << " max_pending_publishes=" << max_pending_publishes
      << " max_messages_per_pull=" << max_messages_per_pull << " publish_timeout=" << publish_timeout.count()
      << "ms dedup_window=" << dedup_window.count() << "ms connect_timeout=" << connect_timeout.count()
      << "ms api_timeout=" << api_timeout.count() << "ms reconnect_wait=" << reconnect_wait.count()
      << "ms reconnect_jitter=" << reconnect_jitter.count() << "ms max_reconnect=" << max_reconnect
      << " reconnect_buffer_bytes=" << reconnect_buffer_bytes << " replicas=" << replicas
      << " storage=" << (file_storage ? "file" : "memory");
  return out.str();
}

expected<void> validate(const nats_config& cfg) {
  auto bad = [](const std::string& field, const std::string& why) {
    return error{errc::invalid_config, "nats config: " + field + " " + why};
  };
  if (cfg.urls.empty()) {
    return bad("urls", "is empty; name at least one server, e.g. nats://127.0.0.1:4222");
  }
  for (const auto& u : cfg.urls) {
    if (u.empty()) {
      return bad("urls", "contains an empty url");
    }
  }
  auto names = subject_space::make(cfg.ns);
  if (!names) {
    return bad("ns", "is invalid: " + names.error().message());
  }
  if (cfg.partition < 0) {
    return bad("partition", "is " + std::to_string(cfg.partition) + "; it must be 0 or more");
  }
  for (const auto& q : cfg.task_queues) {
    if (auto ok = validate_token("queue", q); !ok) {
      return bad("task_queues", "is invalid: " + ok.error().message());
    }
  }
  if (cfg.all_task_queues && !cfg.task_queues.empty()) {
    return bad("all_task_queues",
               "is set together with task_queues; JetStream forbids overlapping consumers on a "
               "work-queue stream, so choose one");
  }
  if (!cfg.security.password.empty() && cfg.security.user.empty()) {
    return bad("password", "is set without a user");
  }
  if (!cfg.security.token.empty() && !cfg.security.user.empty()) {
    return bad("token", "is set together with user; a server takes one or the other");
  }
  if (!cfg.security.tls_key_file.empty() && cfg.security.tls_cert_file.empty()) {
    return bad("tls_key_file", "is set without tls_cert_file");
  }
  if (!cfg.security.tls_cert_file.empty() && cfg.security.tls_key_file.empty()) {
    return bad("tls_cert_file", "is set without tls_key_file");
  }
  auto positive = [&](const char* field, long long value) -> expected<void> {
    if (value <= 0) {
      return bad(field, "is " + std::to_string(value) + "; it must be positive");
    }
    return {};
  };
  if (cfg.connect_wait.count() < 0) {
    return error{errc::invalid_config, "connect_wait: must not be negative"};
  }
  for (auto check :
       {positive("ack_wait", cfg.ack_wait.count()), positive("max_deliver", cfg.max_deliver),
        positive("max_ack_pending", cfg.max_ack_pending),
        positive("max_events_in_flight",
                 static_cast<long long>(std::min<std::size_t>(cfg.max_events_in_flight, LLONG_MAX))),
        positive("max_pending_publishes", cfg.max_pending_publishes),
        positive("max_messages_per_pull", cfg.max_messages_per_pull), positive("task_pack_max", cfg.task_pack_max),
        positive("publish_timeout", cfg.publish_timeout.count()), positive("dedup_window", cfg.dedup_window.count()),
        positive("connect_timeout", cfg.connect_timeout.count()), positive("api_timeout", cfg.api_timeout.count()),
        positive("replicas", cfg.replicas)}) {
    if (!check) {
      return check;
    }
  }
  if (cfg.reconnect_wait.count() < 0 || cfg.reconnect_jitter.count() < 0) {
    return bad("reconnect_wait/reconnect_jitter", "must not be negative");
  }
  if (cfg.max_reconnect < -1) {
    return bad("max_reconnect", "is " + std::to_string(cfg.max_reconnect) + "; use -1 for forever or 0 and more");
  }
  if (cfg.reconnect_buffer_bytes < 0) {
    return bad("reconnect_buffer_bytes", "must not be negative");
  }
  if (cfg.replicas > 5) {
    return bad("replicas", "is " + std::to_string(cfg.replicas) + "; JetStream allows at most 5");
  }
  return {};
}

}  // namespace trellis::detail
