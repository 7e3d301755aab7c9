#pragma once

/// @file
/// Internal to the NATS transport: one NATS connection and every part built
/// on it, seen from outside through two faces, `nats_transport` (the
/// `transport` interface) and `cluster_bus` (the cluster-only API). Both
/// faces are members of the link and their shared_ptrs share its ownership
/// (aliasing), so the link lives while either face is held.
///
/// The parts, each in its own files, each owning its state and locks:
/// - `connection` (nats_connection): the natsConnection and its management
///   JetStream context, the errors no call can return, the reconnect
///   listeners, the closed signal, stream declarations.
/// - `uploads` (nats_uploads): the pieces of messages larger than one NATS
///   message, in their stream.
/// - `publishers` (nats_publishing): the async publishing contexts; task
///   and event packs, message ids, signatures, stubs of large messages.
/// - `consumers` (nats_consumers): the task and event consumers, their pull
///   subscriptions, and the deliveries handed out and not acked.
/// - `events` (nats_loops): the event thread.
/// - `keepalive` (nats_loops): the thread that marks held deliveries in
///   progress.
/// - `lost_tasks` (nats_loops): the lost-task thread, its consumer, and the
///   MAX_DELIVERIES advisories read and not settled.
/// - `submissions`, `control` (nats_requests): core NATS request/reply, with
///   their subscriptions and the reply subjects of requests not answered.
/// - `done`, `revocations` (nats_notices): the done-notice subscriptions and
///   the revoked stream's ordered consumer.
/// - `rates` (nats_rates): the rate-limit bucket and its reservations.
///
/// Threads: besides nats.c's own (which run subscription callbacks and
/// PubAck handlers), three: the event thread (started by
/// `nats_transport::consume_events`), the keep-alive thread (started by the
/// first task fetch or `consume_events`) and the lost-task thread (started
/// by `cluster_bus::watch_exhausted_tasks`). `close()` ends them all.
///
/// Locks: each part's header says which of its mutexes guards what. A part
/// may call the connection (`remember`, a broker request such as declaring
/// a consumer) while it holds its own lock, but never another part, so the
/// only nesting is a part's lock, then the connection's `error_mutex_`. The
/// one sink called under a lock is the submission sink (the submission
/// channel's: submissions reach the dispatcher one at a time).

#include "trellis/error.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/nats_config.hpp"
#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_consumers.hpp"
#include "trellis/transport/nats_loops.hpp"
#include "trellis/transport/nats_notices.hpp"
#include "trellis/transport/nats_publishing.hpp"
#include "trellis/transport/nats_rates.hpp"
#include "trellis/transport/nats_requests.hpp"
#include "trellis/transport/nats_transport.hpp"
#include "trellis/transport/nats_uploads.hpp"

#include <memory>
#include <string>

namespace trellis::detail {

class nats_link {
 public:
  /// Validates `cfg`, connects, and declares the streams and consumers it
  /// asks for, trying again (up to three times) while JetStream does not
  /// answer. Errors as nats_transport::connect.
  static expected<std::shared_ptr<nats_link>> open(nats_config cfg);

  /// Closes (as `close()`), drains every subscription so that no callback
  /// runs any more, flushes pending acks, closes the connection, and then
  /// frees messages before the subscriptions they point to and contexts
  /// before the connection they belong to.
  ~nats_link();
  nats_link(const nats_link&) = delete;
  nats_link& operator=(const nats_link&) = delete;

  /// Raises the closed signal (fetches return empty, the loops end) and
  /// joins the event, keep-alive and lost-task threads. Acks and answers still go out.
  void close();

  // The parts, in the order they are built; the destructor tears them down
  // in the order the connection needs.
  nats_connection connection;
  upload_store uploads;
  publisher_pool publishers;
  pull_consumers consumers;
  event_feed events;
  delivery_keepalive keepalive;
  lost_task_watch lost_tasks;
  submission_channel submissions;
  control_channel control;
  done_channel done;
  lifecycle_channel lifecycle;
  revocation_channel revocations;
  rate_gate rates;

  // The faces.
  nats_transport transport_face;
  cluster_bus bus_face;

 private:
  nats_link(nats_config cfg, subject_space names, std::string event_subject);

  /// The streams and consumers of the configuration (idempotent).
  expected<void> declare();
};

}  // namespace trellis::detail
