#pragma once

/// @file
/// Internal to the NATS transport: the notices of cluster mode, which have
/// nobody to answer. Done notices (core NATS, `trellis.<ns>.done.<id>`: a
/// workflow finished) and revoke notices (kept in the stream
/// `TRELLIS_<NS>_REVOKED`, so that a worker started later still learns of
/// them). The public API is cluster_bus.

#include "trellis/error.hpp"
#include "trellis/lifecycle_events.hpp"
#include "trellis/transport/nats_handles.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trellis::detail {

class nats_connection;
class publisher_pool;

/// Done notices: published by a dispatcher, watched by clients.
///
/// Thread-safe. `mutex_` guards the watches; sinks are called from the NATS
/// thread of their subscription, not under it.
class done_channel {
 public:
  explicit done_channel(nats_connection& conn) : conn_(conn) {}
  done_channel(const done_channel&) = delete;
  done_channel& operator=(const done_channel&) = delete;

  /// See cluster_bus::publish_done.
  expected<void> publish(const std::string& workflow_id, const std::string& bytes);
  /// See cluster_bus::watch_done.
  expected<void> watch(const std::string& workflow_id, std::function<void(std::string)> sink);
  /// See cluster_bus::unwatch_done.
  void unwatch(const std::string& workflow_id);

  /// Teardown, before the connection closes: waits for running callbacks.
  void drain();
  /// Teardown, after the connection closed.
  void clear();

 private:
  /// One subscription per workflow watched.
  struct done_watch {
    std::string workflow_id;
    std::function<void(std::string)> sink;
    subscription_ptr sub;
    // Unsubscribed by unwatch; the object stays until the transport goes,
    // since a callback may still be running when unwatch returns.
    bool ended = false;
  };

  static void on_done(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);

  nats_connection& conn_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<done_watch>> watches_;
};

/// Task events (lifecycle_events.hpp): published by dispatchers and
/// workers on core NATS (`trellis.<ns>.lifecycle`, never stored), followed
/// by monitors such as `trellis dashboard`.
///
/// Announcing queues the events; a flusher thread of the channel (started
/// by the first announcement) publishes what is queued every
/// `flush_interval` as one batch. So a worker that announces every task it
/// starts pays a queue push per task, not an encoding and a publish.
///
/// Thread-safe. `mutex_` guards the one watch; its sink is called from the
/// NATS thread of the subscription, not under it. `queue_mutex_` guards the
/// queue and the flusher's life.
class lifecycle_channel {
 public:
  /// How long an announced event waits, at most, to be published.
  static constexpr std::chrono::milliseconds flush_interval{10};
  /// Events queued at most; more are dropped (notices: the store is the record).
  static constexpr std::size_t max_queued = max_lifecycle_batch_events;

  explicit lifecycle_channel(nats_connection& conn) : conn_(conn) {}
  lifecycle_channel(const lifecycle_channel&) = delete;
  lifecycle_channel& operator=(const lifecycle_channel&) = delete;

  /// See nats_transport::announce_lifecycle: queues `events` for the next
  /// flush. A batch larger than one NATS message goes as several; a failure
  /// is dropped (events are notices).
  void publish(const std::vector<lifecycle_event>& events);
  /// See cluster_bus::watch_lifecycle.
  expected<void> watch(std::function<void(std::string)> sink);

  /// Teardown, before the connection closes: publishes what is queued,
  /// ends the flusher and waits for a running callback.
  void drain();
  /// Teardown, after the connection closed.
  void clear();

 private:
  static void on_batch(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  void flush_loop();
  void publish_range(const std::vector<lifecycle_event>& events, std::size_t begin, std::size_t end);

  nats_connection& conn_;
  std::mutex mutex_;
  std::function<void(std::string)> sink_;
  subscription_ptr sub_;
  std::mutex queue_mutex_;
  /// Wakes the flusher: events queued, or stopping.
  std::condition_variable queue_stop_;
  std::vector<lifecycle_event> queued_;
  bool stopping_ = false;
  std::thread flusher_;
};

/// Revoke notices: published (through JetStream, deduplicated by workflow)
/// by a dispatcher, read by workers through an ordered consumer.
///
/// Thread-safe. `mutex_` guards the one watch; the watch's own mutex how far
/// it read, which `watch` waits on. The sink is called from the NATS thread
/// of the subscription, under neither.
class revocation_channel {
 public:
  revocation_channel(nats_connection& conn, publisher_pool& publishers) : conn_(conn), publishers_(publishers) {}
  revocation_channel(const revocation_channel&) = delete;
  revocation_channel& operator=(const revocation_channel&) = delete;

  /// `TRELLIS_<NS>_REVOKED` on the `revoked` notice subject: limits
  /// retention, as many notices as a worker remembers, for a week.
  expected<void> declare_stream();
  /// See cluster_bus::publish_revocation.
  expected<void> publish(const std::string& workflow_id, const std::string& bytes);
  /// See cluster_bus::watch_revocations.
  expected<void> watch(std::function<void(std::string)> sink);

  /// Teardown, before the connection closes: waits for a running callback.
  void drain();
  /// Teardown, after the connection closed.
  void clear();

 private:
  /// The ordered consumer of the revoked stream.
  struct revocation_watch {
    nats_connection* conn = nullptr;
    std::function<void(std::string)> sink;
    subscription_ptr sub;
    std::mutex mutex;
    std::condition_variable advanced;
    std::uint64_t read_up_to = 0;  // stream sequence of the last notice handed over
  };

  static void on_revocation(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);

  nats_connection& conn_;
  publisher_pool& publishers_;
  std::mutex mutex_;
  std::unique_ptr<revocation_watch> watch_;
};

}  // namespace trellis::detail
