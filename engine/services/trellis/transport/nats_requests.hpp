#pragma once

/// @file
/// Internal to the NATS transport: the core NATS request/reply of cluster
/// mode. Submissions (a client's request, a dispatcher's answer after its
/// commit) and control (docs/cluster.md "Control": requests to one
/// dispatcher, scatter-gather to every process, and broadcast notices).
/// Both sides live here; the public API is cluster_bus, and the dispatcher
/// side is also what `nats_transport::consume_submissions` and
/// `consume_control` forward to.

#include "trellis/error.hpp"
#include "trellis/transport/nats_handles.hpp"
#include "trellis/transport/nats_uploads.hpp"
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace trellis::detail {

class nats_connection;

/// Submissions: `trellis.<ns>.submit.<partition>`.
///
/// Thread-safe. `mutex_` guards the sink, the subscription handle and the
/// reply subjects by token; the sink is called under it, from the NATS
/// thread of the subscription (one at a time).
class submission_channel {
 public:
  /// A submission larger than one NATS message travels through `uploads`.
  submission_channel(nats_connection& conn, upload_store& uploads) : conn_(conn), uploads_(uploads) {}
  submission_channel(const submission_channel&) = delete;
  submission_channel& operator=(const submission_channel&) = delete;

  /// Dispatcher side; see cluster_bus::consume_submissions.
  void consume(std::function<void(delivery)> sink);
  /// Dispatcher side; see cluster_bus::answer_submission.
  void answer(const delivery& d, const std::string& reply);
  /// Client side; see cluster_bus::request_submission.
  expected<std::string> request(const std::string& bytes, std::chrono::milliseconds timeout,
                                std::optional<int> partition);

  /// Teardown, before the connection closes: waits for a running callback.
  void drain();
  /// Teardown, after the connection closed.
  void clear();

 private:
  static void on_submission(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  /// One request of `bytes` (as a stub when `upload` is set) to `subject`,
  /// signed when the configuration has a signer.
  natsStatus send_request(natsMsg** reply, const std::string& subject, const std::string& bytes,
                          const std::string* upload, std::chrono::milliseconds wait);

  nats_connection& conn_;
  upload_store& uploads_;
  std::mutex mutex_;
  std::function<void(delivery)> sink_;
  subscription_ptr sub_;
  std::unordered_map<std::uint64_t, std::string> replies_;  // token -> reply subject
  std::uint64_t next_token_ = 1;
};

/// Control: `trellis.<ns>.ctl.…`, requests with a reply subject and notices
/// without one.
///
/// Thread-safe. `mutex_` guards the subscriptions, the reply subjects by
/// token and whether the dispatcher subscribed; `sink_mutex_` the
/// dispatcher's sink. Sinks are called from NATS threads, under neither.
class control_channel {
 public:
  /// An answer larger than one NATS message travels through `uploads`.
  control_channel(nats_connection& conn, upload_store& uploads) : conn_(conn), uploads_(uploads) {}
  control_channel(const control_channel&) = delete;
  control_channel& operator=(const control_channel&) = delete;

  /// Dispatcher side; see cluster_bus::consume_control.
  void consume(std::function<void(delivery)> sink);
  /// Both sides; see cluster_bus::answer_control.
  void answer(const delivery& d, const std::string& reply);
  /// See cluster_bus::serve_control.
  expected<void> serve(const std::string& verb, std::function<void(delivery)> sink);
  /// Client side; see cluster_bus::request_control.
  expected<std::string> request(const std::string& verb, int partition, const std::string& bytes,
                                std::chrono::milliseconds timeout);
  /// Client side; see cluster_bus::gather_control.
  expected<std::vector<std::string>> gather(const std::string& verb, const std::string& bytes,
                                            std::chrono::milliseconds window);

  /// Teardown, before the connection closes: waits for running callbacks.
  void drain();
  /// Teardown, after the connection closed.
  void clear();

 private:
  /// One subscription and the sink it calls.
  struct control_watch {
    control_channel* self = nullptr;
    std::function<void(delivery)> sink;
    subscription_ptr sub;
  };

  static void on_control(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  expected<void> subscribe(const std::string& subject, const std::string& queue_group,
                           std::function<void(delivery)> receiver);

  nats_connection& conn_;
  upload_store& uploads_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<control_watch>> watches_;
  std::map<std::uint64_t, std::string> replies_;  // token -> reply subject, oldest first
  std::uint64_t next_token_ = 1;
  bool dispatcher_subscribed_ = false;
  std::mutex sink_mutex_;
  std::function<void(delivery)> dispatcher_sink_;
};

}  // namespace trellis::detail
