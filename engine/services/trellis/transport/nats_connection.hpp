#pragma once

/// @file
/// Internal to the NATS transport: the one NATS connection a process opens
/// per `nats_config`, shared by every part of a `nats_link` (publishing,
/// consumers, the loops, the cluster bus). It owns what they have in common:
/// the connection and its management JetStream context, the errors that no
/// call can return, the reconnect listeners, the closed signal, and the
/// declaration of streams.

#include "trellis/error.hpp"
#include "trellis/transport/nats_config.hpp"
#include "trellis/transport/nats_handles.hpp"
#include "trellis/transport/subjects.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

/// The status text plus nats.c's thread-local detail, e.g.
/// "Authorization Violation" or "stalled with too many outstanding async
/// published messages". May contain server-supplied text, so callers pass it
/// through nats_connection::mask before it leaves the transport.
std::string status_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

/// One NATS connection: connect options, TLS and authentication, the
/// management JetStream context (stream and consumer requests, pull
/// subscriptions, acks, advisories), reconnects, errors and closing.
///
/// Thread-safe. Locks, each guarding only what it names, never held while
/// calling out: `error_mutex_` the last error, `reconnect_mutex_` the
/// reconnect listeners, `close_mutex_` the closed signal's waits.
///
/// Lifetime: `connect` once, then shared by reference; `close_connection`
/// and `release` are the owner's teardown (nats_link), in that order.
class nats_connection {
 public:
  nats_connection(nats_config cfg, subject_space names);
  ~nats_connection();
  nats_connection(const nats_connection&) = delete;
  nats_connection& operator=(const nats_connection&) = delete;

  /// Connects with the configured servers, timeouts, reconnect policy,
  /// credentials and TLS, and opens the management JetStream context.
  /// Errors: `invalid_config` (urls, a creds or TLS file that does not
  /// load), `broker_unavailable` (no server accepts, bad credentials).
  expected<void> connect();

  const nats_config& cfg() const noexcept { return cfg_; }
  const subject_space& names() const noexcept { return names_; }
  /// The connection; null before `connect` succeeded and after `release`.
  natsConnection* get() const noexcept { return conn_.get(); }
  /// The management JetStream context (not for async publishing, which
  /// needs a context per call: see publisher_pool).
  jsCtx* js() const noexcept { return js_.get(); }
  /// Options of a JetStream API request: `api_timeout`.
  jsOptions api_options() const;

  // --- errors -------------------------------------------------------------

  /// `text` with every secret of the configuration replaced by ***.
  std::string mask(std::string text) const;
  /// `what` and the status, masked: `payload_too_large` for NATS_MAX_PAYLOAD,
  /// else `broker_unavailable`.
  error broker_error(const std::string& what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) const;
  /// A JetStream API refusal (the server answered with an error code) is a
  /// configuration problem; no answer at all is an unavailable broker.
  error api_error(const std::string& what, natsStatus s, jsErrCode jerr) const;
  /// Keeps `e` as the last error (for a call that cannot return one).
  void remember(error e);
  /// The most recent remembered error; empty when there was none.
  std::optional<error> last_error() const;

  /// broker_unavailable if the connection is not up right now, else nothing.
  std::optional<error> unless_connected(const std::string& what) const;
  /// Whether the connection is up right now (false while reconnecting).
  bool is_connected() const;

  // --- reconnects ---------------------------------------------------------

  /// Calls `listener` (from a NATS thread) after each reconnect.
  void on_reconnect(std::function<void()> listener);
  /// Drops every listener (teardown: they may use objects about to go).
  void forget_reconnect_listeners();

  // --- closing -------------------------------------------------------------

  /// Raises the closed signal and wakes every `pause`. Does not close the
  /// connection: acks and answers still go out.
  void close();
  bool closed() const noexcept { return closed_.load(); }
  /// Waits up to `d` or until `close()`. Pacing after an error, not a
  /// synchronization: the condition is the closed signal.
  void pause(std::chrono::milliseconds d);

  /// Teardown, once every subscription is drained: pushes buffered acks out
  /// (bounded by `publish_timeout`) and closes the connection.
  void close_connection();
  /// Teardown, once every message, subscription and publishing context is
  /// gone: destroys the management context, then the connection.
  void release();

  // --- streams ---------------------------------------------------------------

  /// The fields every Trellis stream shares: a name, one subject (`subject`
  /// points to its C string, which must outlive `sc`), a retention policy,
  /// and the configured storage and replicas.
  void init_stream(jsStreamConfig& sc, const std::string& name, const char** subject,
                   jsRetentionPolicy retention) const;
  /// Declares the work-queue stream `name` on `subject` (tasks, events).
  expected<void> declare_work_queue_stream(const std::string& name, const std::string& subject);
  /// Creates the stream `sc` describes, or updates it when it exists with
  /// another configuration (say, a new dedup window or replica count).
  expected<void> add_or_update_stream(jsStreamConfig& sc, const std::string& name, const std::string& subject);

  // --- description -------------------------------------------------------------

  /// The configuration in use, with secrets masked.
  std::string describe() const { return cfg_.redacted(); }
  /// A name for this process in control answers: `<client_name>@<host>:<pid>`.
  std::string process_name() const;
  /// The server's max_payload less room for headers; no limit while it is
  /// not known (never connected).
  std::size_t max_message_bytes() const;

 private:
  static void on_reconnected(natsConnection*, void* closure);

  const nats_config cfg_;
  const subject_space names_;
  connection_ptr conn_;
  js_ptr js_;

  mutable std::mutex error_mutex_;
  std::optional<error> last_error_;

  std::mutex reconnect_mutex_;
  std::vector<std::function<void()>> reconnect_listeners_;

  std::atomic<bool> closed_{false};
  std::mutex close_mutex_;
  std::condition_variable close_cv_;
};

}  // namespace trellis::detail
