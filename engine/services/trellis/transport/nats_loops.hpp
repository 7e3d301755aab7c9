#pragma once

/// @file
/// Internal to the NATS transport: its three threads. The event thread
/// (`event_feed`) pulls a dispatcher's outcome events and hands them to its
/// sink; the lost-task thread (`lost_task_watch`) reads the MAX_DELIVERIES
/// advisories of the task consumers ("worker lost") and hands the exhausted
/// tasks to its sink; the keep-alive thread (`delivery_keepalive`) tells
/// JetStream that what this process holds is still being worked on. Each
/// object owns its thread, started by the first `start`/`watch` and joined
/// by `stop` (nats_link::close stops them all, after raising the
/// connection's closed signal, which ends their loops).

#include "trellis/error.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/nats_consumers.hpp"
#include "trellis/transport/nats_handles.hpp"
#include "trellis/transport/nats_uploads.hpp"
#include "trellis/transport/transport.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace trellis::detail {

class nats_connection;

/// The event thread: pulls batches from `dispatcher-<partition>` (through
/// `pull_consumers`, which keeps their deliveries and the backpressure of
/// `max_events_in_flight`) and calls the sink with each.
///
/// Thread-safe. `mutex_` guards the sink and the thread handle; it is not
/// held while the sink runs.
class event_feed {
 public:
  event_feed(nats_connection& conn, pull_consumers& consumers) : conn_(conn), consumers_(consumers) {}
  ~event_feed() { stop(); }
  event_feed(const event_feed&) = delete;
  event_feed& operator=(const event_feed&) = delete;

  /// `nats_transport::consume_events`: installs `sink` (replacing the
  /// previous one, whose unacked events no longer count) and starts the
  /// thread unless it runs or the connection is closed.
  void start(std::function<void(std::vector<delivery>)> sink);
  /// Joins the thread, which ends once the closed signal is raised; from
  /// inside the sink, detaches it instead (it ends after this batch).
  void stop();

 private:
  void loop();

  nats_connection& conn_;
  pull_consumers& consumers_;
  std::mutex mutex_;
  std::function<void(std::vector<delivery>)> sink_;
  std::thread thread_;
};

/// Keeps alive the deliveries this process holds (`pull_consumers::keep_alive`)
/// three times per AckWait, so that JetStream delivers a message again only
/// when the process holding it is gone (killed, stopped, cut off), never
/// because its handler or its commit takes long. That is what lets AckWait
/// be short (defaults::ack_wait): a dead worker's tasks come back within
/// it, and a task of any length still runs once.
///
/// Thread-safe; `mutex_` guards the thread handle.
class delivery_keepalive {
 public:
  delivery_keepalive(nats_connection& conn, pull_consumers& consumers) : conn_(conn), consumers_(consumers) {}
  ~delivery_keepalive() { stop(); }
  delivery_keepalive(const delivery_keepalive&) = delete;
  delivery_keepalive& operator=(const delivery_keepalive&) = delete;

  /// Starts the thread unless it runs or the connection is closed. Cheap
  /// when it runs: the first task fetch and `consume_events` call it.
  void start();
  /// Joins the thread, which ends once the closed signal is raised.
  void stop();

 private:
  void loop();

  nats_connection& conn_;
  pull_consumers& consumers_;
  std::atomic<bool> started_{false};
  std::mutex mutex_;
  std::thread thread_;
};

/// "Worker lost", dispatcher side: the stream `TRELLIS_<NS>_LOST` that keeps
/// the advisories, its durable consumer `lost-<partition>`, the thread that
/// reads it one advisory at a time, and the advisories read and not settled
/// yet (see cluster_bus::watch_exhausted_tasks for the whole story).
///
/// Thread-safe. `binding_mutex_` guards the consumer's binding (declaring it
/// is a broker request made under it); `mutex_` the sink, the held
/// advisories and the thread handle, and is not held while the sink runs.
class lost_task_watch {
 public:
  /// An exhausted stub's whole body is read through `uploads`.
  lost_task_watch(nats_connection& conn, upload_store& uploads) : conn_(conn), uploads_(uploads) {}
  ~lost_task_watch() { stop(); }
  lost_task_watch(const lost_task_watch&) = delete;
  lost_task_watch& operator=(const lost_task_watch&) = delete;

  /// Declares `TRELLIS_<NS>_LOST`: limits retention, so every partition's
  /// consumer sees every advisory, for a week.
  expected<void> declare_stream();
  /// Declares `lost-<partition>` unless it is already bound.
  expected<void> bind();

  /// `cluster_bus::watch_exhausted_tasks`.
  expected<void> watch(std::function<void(exhausted_task)> sink);
  /// `cluster_bus::settle_exhausted_task`.
  expected<void> settle(std::uint64_t token);
  /// `cluster_bus::pass_exhausted_task`.
  void pass(std::uint64_t token);
  /// `cluster_bus::discard_exhausted_task`.
  expected<void> discard(std::uint64_t stream_sequence);

  /// Joins the thread as event_feed::stop does.
  void stop();
  /// Teardown, after the connection closed: drops the held advisories,
  /// then the binding they point into.
  void clear();

 private:
  /// An advisory read and held, unacked, until its task is settled or
  /// passed; keyed by its sequence in the lost stream, so a redelivery
  /// replaces the copy it repeats.
  struct lost_advisory {
    message_ptr msg;
    std::uint64_t task_sequence = 0;
  };

  expected<void> bind_locked();
  void loop();
  void skip_advisory(natsMsg* msg, error why);
  void handle_advisory(message_ptr msg);
  std::optional<lost_advisory> take(std::uint64_t token);
  void ack(lost_advisory& held);

  nats_connection& conn_;
  upload_store& uploads_;
  std::mutex binding_mutex_;
  std::unique_ptr<consumer_binding> binding_;
  std::mutex mutex_;
  std::function<void(exhausted_task)> sink_;
  std::unordered_map<std::uint64_t, lost_advisory> unacked_;
  std::thread thread_;
};

}  // namespace trellis::detail
