#include "trellis/transport/nats_connection.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>

#include <unistd.h>

namespace trellis::detail {

std::string status_text(natsStatus s, jsErrCode jerr) {
  std::string text = natsStatus_GetText(s);
  natsStatus last_status = NATS_OK;
  const char* raw = nats_GetLastError(&last_status);
  std::string detail = raw != nullptr ? raw : "";
  // nats.c prefixes its detail with the source location, "(conn.c:1905): ".
  if (auto end = detail.find("): "); !detail.empty() && detail.front() == '(' && end != std::string::npos) {
    detail.erase(0, end + 3);
  }
  if (!detail.empty() && last_status == s && detail != text) {
    text += " (" + detail + ")";
  }
  if (jerr != 0) {
    text += " [JetStream error " + std::to_string(static_cast<int>(jerr)) + "]";
  }
  return text;
}

nats_connection::nats_connection(nats_config cfg, subject_space names)
    : cfg_(std::move(cfg)), names_(std::move(names)) {}

// Nothing to do: nats_link's teardown closed (close_connection) and released
// (release) the connection before its other parts went.
nats_connection::~nats_connection() = default;

std::string nats_connection::mask(std::string text) const {
  auto replace_all = [&text](const std::string& secret) {
    if (secret.empty()) {
      return;
    }
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  };
  for (const auto& u : cfg_.urls) {
    auto scheme = u.find("://");
    auto start = scheme == std::string::npos ? 0 : scheme + 3;
    if (auto at = u.find('@', start); at != std::string::npos && url_redacted(u) != u) {
      replace_all(u.substr(start, at - start));  // "user:password" of nats://user:password@host
    }
  }
  replace_all(cfg_.security.password);
  replace_all(cfg_.security.token);
  return text;
}

error nats_connection::broker_error(const std::string& what, natsStatus s, jsErrCode jerr) const {
  auto code = s == NATS_MAX_PAYLOAD ? errc::payload_too_large : errc::broker_unavailable;
  return error{code, mask(what + ": " + status_text(s, jerr))};
}

error nats_connection::api_error(const std::string& what, natsStatus s, jsErrCode jerr) const {
  if (jerr != 0) {
    return error{errc::invalid_config, mask(what + ": " + status_text(s, jerr))};
  }
  auto text = what + ": " + status_text(s, jerr);
  if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT) {
    text += "; is JetStream enabled on the server (nats-server -js)?";
  }
  return error{errc::broker_unavailable, mask(text)};
}

void nats_connection::remember(error e) {
  std::lock_guard<std::mutex> guard{error_mutex_};
  last_error_ = std::move(e);
}

jsOptions nats_connection::api_options() const {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = cfg_.api_timeout.count();
  return jo;
}

std::optional<error> nats_connection::unless_connected(const std::string& what) const {
  if (natsConnection_Status(conn_.get()) == NATS_CONN_STATUS_CONNECTED) {
    return std::nullopt;
  }
  return error{errc::broker_unavailable, "cannot " + what + ": not connected to NATS (reconnecting)"};
}

expected<void> nats_connection::connect() {
  natsOptions* raw = nullptr;
  if (auto s = natsOptions_Create(&raw); s != NATS_OK) {
    return broker_error("cannot create NATS options", s);
  }
  options_ptr opts{raw};
  const auto& sec = cfg_.security;
  auto where = "NATS at " + urls_redacted(cfg_.urls);
  auto fail = [&](const std::string& what, natsStatus s) -> expected<void> {
    return broker_error("cannot " + what + " for " + where, s);
  };
  std::vector<const char*> servers;
  for (const auto& u : cfg_.urls) {
    servers.push_back(u.c_str());
  }
  if (auto s = natsOptions_SetServers(opts.get(), servers.data(), static_cast<int>(servers.size())); s != NATS_OK) {
    return error{errc::invalid_config, mask("nats urls '" + urls_redacted(cfg_.urls) + "': " + status_text(s))};
  }
  natsOptions_SetName(opts.get(), cfg_.client_name.c_str());
  natsOptions_SetTimeout(opts.get(), cfg_.connect_timeout.count());
  natsOptions_SetAllowReconnect(opts.get(), true);
  natsOptions_SetMaxReconnect(opts.get(), cfg_.max_reconnect);
  natsOptions_SetReconnectWait(opts.get(), cfg_.reconnect_wait.count());
  natsOptions_SetReconnectJitter(opts.get(), cfg_.reconnect_jitter.count(), cfg_.reconnect_jitter.count());
  natsOptions_SetReconnectBufSize(opts.get(), cfg_.reconnect_buffer_bytes);
  // Management requests fail at once on a disconnect instead of waiting
  // out their timeout; publishes and pull requests are buffered instead.
  natsOptions_SetFailRequestsOnDisconnect(opts.get(), true);
  // Write every publish, ack and pull request to the socket at once.
  // Otherwise nats.c's flusher thread holds them about 1 ms to coalesce
  // writes, and a one-task round trip pays that wait on each unflushed hop
  // (the dispatcher's event ack and done notice, every pull request):
  // trellis_bench_nats measured a p50 of 2.0 ms with the delay and 1.4-1.7
  // ms without (docs/performance.md). No-op throughput did not change,
  // since tasks and events already travel in packs.
  natsOptions_SetSendAsap(opts.get(), true);
  natsOptions_SetReconnectedCB(opts.get(), &nats_connection::on_reconnected, this);
  if (!sec.user.empty()) {
    if (auto s = natsOptions_SetUserInfo(opts.get(), sec.user.c_str(), sec.password.c_str()); s != NATS_OK) {
      return fail("set the user", s);
    }
  }
  if (!sec.token.empty()) {
    if (auto s = natsOptions_SetToken(opts.get(), sec.token.c_str()); s != NATS_OK) {
      return fail("set the token", s);
    }
  }
  if (!sec.creds_file.empty()) {
    if (auto s = natsOptions_SetUserCredentialsFromFiles(opts.get(), sec.creds_file.c_str(), nullptr); s != NATS_OK) {
      return error{errc::invalid_config, mask("creds file '" + sec.creds_file + "': " + status_text(s))};
    }
  }
  bool tls = !sec.tls_ca_file.empty() || !sec.tls_cert_file.empty();
  if (tls) {
    if (auto s = natsOptions_SetSecure(opts.get(), true); s != NATS_OK) {
      return fail("enable TLS", s);
    }
  }
  if (!sec.tls_ca_file.empty()) {
    if (auto s = natsOptions_LoadCATrustedCertificates(opts.get(), sec.tls_ca_file.c_str()); s != NATS_OK) {
      return error{errc::invalid_config, mask("TLS CA file '" + sec.tls_ca_file + "': " + status_text(s))};
    }
  }
  if (!sec.tls_cert_file.empty()) {
    if (auto s = natsOptions_LoadCertificatesChain(opts.get(), sec.tls_cert_file.c_str(), sec.tls_key_file.c_str());
        s != NATS_OK) {
      return error{errc::invalid_config, mask("TLS certificate '" + sec.tls_cert_file + "' / key '" + sec.tls_key_file +
                                              "': " + status_text(s))};
    }
  }
  natsConnection* nc = nullptr;
  auto s = natsConnection_Connect(&nc, opts.get());
  if (s == NATS_NO_SERVER && cfg_.connect_wait.count() > 0) {
    // No server answers yet (it may be starting with this process): try
    // again, pausing longer each time, until connect_wait has passed.
    auto give_up = std::chrono::steady_clock::now() + cfg_.connect_wait;
    auto pause = std::chrono::milliseconds{100};
    if (cfg_.on_connect_wait) {
      cfg_.on_connect_wait(broker_error("cannot connect to " + where, s).message(), cfg_.connect_wait);
    }
    for (auto left = give_up - std::chrono::steady_clock::now(); s == NATS_NO_SERVER && left.count() > 0;
         left = give_up - std::chrono::steady_clock::now()) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
      pause = std::min(pause * 2, std::chrono::milliseconds{2'000});
      s = natsConnection_Connect(&nc, opts.get());
    }
  }
  if (s != NATS_OK) {
    std::string who = sec.user.empty() ? "" : " as user '" + sec.user + "'";
    if (s == NATS_CONNECTION_AUTH_FAILED) {
      // Said plainly: retrying cannot help, the credentials must change.
      return error{errc::broker_unavailable,
                   mask("authorization violation: " + where + " refused the credentials of this client" + who +
                        " (check the user and password, the token or the creds file)")};
    }
    return broker_error("cannot connect to " + where + who, s);
  }
  conn_.reset(nc);
  jsCtx* ctx = nullptr;
  auto jo = api_options();
  if (auto js = natsConnection_JetStream(&ctx, conn_.get(), &jo); js != NATS_OK) {
    return broker_error("cannot open a JetStream context on " + where, js);
  }
  js_.reset(ctx);
  return {};
}

void nats_connection::init_stream(jsStreamConfig& sc, const std::string& name, const char** subject,
                                  jsRetentionPolicy retention) const {
  jsStreamConfig_Init(&sc);
  sc.Name = name.c_str();
  sc.Subjects = subject;
  sc.SubjectsLen = 1;
  sc.Retention = retention;
  sc.Storage = cfg_.file_storage ? js_FileStorage : js_MemoryStorage;
  sc.Replicas = cfg_.replicas;
}

expected<void> nats_connection::declare_work_queue_stream(const std::string& name, const std::string& subject) {
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig sc;
  // Work queue: a message is removed once acked, and no two consumers may
  // overlap, so each message has exactly one consumer (one queue, or one
  // dispatcher partition).
  init_stream(sc, name, subjects, js_WorkQueuePolicy);
  sc.Duplicates = to_nanos(cfg_.dedup_window);
  return add_or_update_stream(sc, name, subject);
}

expected<void> nats_connection::add_or_update_stream(jsStreamConfig& sc, const std::string& name,
                                                     const std::string& subject) {
  auto jo = api_options();
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_AddStream(&info, js_.get(), &sc, &jo, &jerr);
  stream_info_ptr added{info};
  if (s == NATS_OK) {
    return {};
  }
  // Two processes declaring the same stream at once: the loser is told
  // either that the name exists or, by nats-server 2.9 while the winner's
  // stream is still being created, that its subjects overlap. Either way
  // the stream is there; the update below checks that it is this one.
  if (jerr != JSStreamNameExistErr && jerr != JSStreamSubjectOverlapErr) {
    return api_error("cannot create stream " + name + " on " + subject, s, jerr);
  }
  const auto create_error = api_error("cannot create stream " + name + " on " + subject, s, jerr);
  const bool overlapped = jerr == JSStreamSubjectOverlapErr;
  info = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_UpdateStream(&info, js_.get(), &sc, &jo, &jerr);
  stream_info_ptr updated{info};
  if (s != NATS_OK) {
    if (overlapped) {
      return create_error;  // another stream holds these subjects
    }
    return api_error("stream " + name + " exists with a configuration that cannot be updated", s, jerr);
  }
  return {};
}

void nats_connection::on_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<nats_connection*>(closure);
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard<std::mutex> guard{self->reconnect_mutex_};
    listeners = self->reconnect_listeners_;
  }
  for (auto& l : listeners) {
    l();
  }
}

std::optional<error> nats_connection::last_error() const {
  std::lock_guard<std::mutex> guard{error_mutex_};
  return last_error_;
}

bool nats_connection::is_connected() const { return natsConnection_Status(conn_.get()) == NATS_CONN_STATUS_CONNECTED; }

void nats_connection::on_reconnect(std::function<void()> listener) {
  std::lock_guard<std::mutex> guard{reconnect_mutex_};
  reconnect_listeners_.push_back(std::move(listener));
}

void nats_connection::forget_reconnect_listeners() {
  std::lock_guard<std::mutex> guard{reconnect_mutex_};
  reconnect_listeners_.clear();
}

void nats_connection::close() {
  {
    std::lock_guard<std::mutex> guard{close_mutex_};
    closed_ = true;
  }
  close_cv_.notify_all();
}

void nats_connection::pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock{close_mutex_};
  close_cv_.wait_for(lock, d, [this] { return closed_.load(); });
}

void nats_connection::close_connection() {
  // Push buffered acks out before the connection goes: an ack lost here
  // only costs a redelivery, but there is no reason to lose it.
  if (conn_ && natsConnection_Status(conn_.get()) == NATS_CONN_STATUS_CONNECTED) {
    natsConnection_FlushTimeout(conn_.get(), cfg_.publish_timeout.count());
  }
  if (conn_) {
    natsConnection_Close(conn_.get());
  }
}

void nats_connection::release() {
  js_.reset();
  conn_.reset();
}

std::string nats_connection::process_name() const {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) {
    std::snprintf(host, sizeof host, "unknown-host");
  }
  return cfg_.client_name + "@" + host + ":" + std::to_string(static_cast<long long>(getpid()));
}

std::size_t nats_connection::max_message_bytes() const {
  // max_payload counts headers too: the signature and pack headers are far
  // below this room.
  constexpr std::int64_t header_room = 4096;
  auto max = conn_ ? natsConnection_GetMaxPayload(conn_.get()) : 0;
  return max > header_room ? static_cast<std::size_t>(max - header_room) : SIZE_MAX;
}

}  // namespace trellis::detail
