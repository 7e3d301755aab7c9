#pragma once

/// @file
/// What cluster processes say to each other over NATS besides the
/// `transport` interface: clients submit and hear when workflows finished,
/// the CLI sends control requests, dispatchers tell workers of revocations
/// and settle the tasks JetStream gave up on, and anyone may ask a queue's
/// depth (docs/cluster.md). `cluster_bus` shares its NATS connection with a
/// `nats_transport` (`connect_nats`), or has one of its own
/// (`cluster_bus::connect`, for clients). No NATS type appears here; the
/// parts it is made of, their threads and locks are in nats_link.hpp.

#include "trellis/error.hpp"
#include "trellis/transport/nats_census.hpp"
#include "trellis/transport/nats_config.hpp"
#include "trellis/transport/nats_transport.hpp"
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

class nats_link;

/// A task message JetStream stopped delivering after `max_deliver`
/// deliveries without an ack: the worker holding it died (or hung) that many
/// times. The owner of its workflow dead-letters it ("worker lost") and then
/// settles it; a dispatcher of another partition passes it.
struct exhausted_task {
  /// The queue it was published to.
  std::string queue;
  /// Its sequence in the task stream, for `discard_exhausted_task`.
  std::uint64_t stream_sequence = 0;
  /// Deliveries JetStream made.
  std::int32_t deliveries = 0;
  /// The encoded envelope as published.
  std::string bytes;
  /// Its advisory, unacked until `settle_exhausted_task` or
  /// `pass_exhausted_task` (the advisory's sequence in the lost stream).
  std::uint64_t token = 0;
};

/// The cluster-only API of one NATS connection. Every member function is
/// thread-safe. Sinks are called from NATS threads (the lost-task sink from
/// the lost-task thread) and must not block for long.
///
/// Lifetime: shares ownership of the connection with its `nats_transport`;
/// when the last of them goes, every subscription is drained (running
/// callbacks finish), pending acks are flushed and the connection closed.
class cluster_bus {
 public:
  /// Connects as nats_transport::connect does, for a process that needs only
  /// the bus (a client turns `declare_streams` off and declares no consumer).
  static expected<std::shared_ptr<cluster_bus>> connect(nats_config cfg);

  cluster_bus(const cluster_bus&) = delete;
  cluster_bus& operator=(const cluster_bus&) = delete;

  // --- submissions (core NATS request/reply) ----------------------------------

  /// Subscribes (queue group `dispatchers`) to `trellis.<ns>.submit.<partition>`
  /// on core NATS and calls `sink` from a NATS thread with each submission
  /// that carries a reply subject. Installing a second sink replaces the
  /// first. A subscription failure is kept in `last_error()`.
  void consume_submissions(std::function<void(delivery)> sink);

  /// Publishes `reply` on the reply subject of submission `d` (core NATS).
  /// Unknown tokens are ignored.
  void answer_submission(const delivery& d, const std::string& reply);

  /// Client side of a submission: sends `bytes` to
  /// `trellis.<ns>.submit.<partition>` as a request and returns the
  /// dispatcher's reply, sent after its commit. While no dispatcher listens
  /// ("no responders") the request is repeated until `timeout` has passed;
  /// then `errc::broker_unavailable`, as for any other failure. A request
  /// not answered within 1 s is sent again, then after 2, 4 and 8 s (an
  /// answer lost with a dispatcher that died after its commit, or a large
  /// submission still committing): the dispatcher answers a workflow id it
  /// already has with that id, so the workflow is submitted once. Still no
  /// answer at `timeout`: `errc::timeout`.
  /// `partition` chooses the dispatcher (`partition_of` the workflow id);
  /// by default, the configured `nats_config::partition`.
  expected<std::string> request_submission(const std::string& bytes, std::chrono::milliseconds timeout,
                                           std::optional<int> partition = std::nullopt);

  // --- done notices (core NATS) -------------------------------------------------

  /// Publishes `bytes` (core NATS, not stored) on `trellis.<ns>.done.<workflow_id>`.
  expected<void> publish_done(const std::string& workflow_id, const std::string& bytes);
  /// The largest done notice: one NATS message (a notice is not stored, so
  /// it does not travel in pieces; a larger outcome is announced without
  /// its result, which a status request then fetches).
  std::size_t max_notice_bytes() const;

  /// Subscribes to `trellis.<ns>.done.<workflow_id>` and calls `sink` (from
  /// a NATS thread) with each notification until the connection goes.
  /// Returns once the server knows the subscription, so a notification sent
  /// after the return is not missed.
  expected<void> watch_done(const std::string& workflow_id, std::function<void(std::string)> sink);

  /// Ends the watch of `workflow_id` (every one, if it was watched more than
  /// once): its sink is not called any more and the subscription's delivery
  /// thread ends. A client that waits for many workflows calls it after each.
  void unwatch_done(const std::string& workflow_id);

  /// Subscribes to the namespace's task events (`trellis.<ns>.lifecycle`)
  /// and calls `sink` from a NATS thread with each batch as published
  /// (`decode_lifecycle_batch` reads it). A second call replaces the sink.
  /// Returns once the server knows the subscription.
  expected<void> watch_lifecycle(std::function<void(std::string)> sink);

  // --- control (core NATS) --------------------------------------------------------

  /// Dispatcher side of control (docs/cluster.md "Control"): subscribes on
  /// core NATS to `trellis.<ns>.ctl.*.<partition>` (queue group
  /// `dispatchers`) and to `trellis.<ns>.ctl.inspect` (every dispatcher), and
  /// calls `sink` from a NATS thread with each request that carries a reply
  /// subject. Installing a second sink replaces the first. A subscription
  /// failure is kept in `last_error()`.
  void consume_control(std::function<void(delivery)> sink);

  /// Publishes `reply` on the reply subject of control request `d` (core
  /// NATS), whether `consume_control` or `serve_control` received it.
  /// Unknown tokens, and notices that carry no reply subject, are ignored.
  void answer_control(const delivery& d, const std::string& reply);

  /// Subscribes on core NATS to the broadcast subject `trellis.<ns>.ctl.<verb>`
  /// (no queue group: every subscriber gets every message) and calls `sink`
  /// from a NATS thread with each message. A message with a reply subject is
  /// a request, answered with `answer_control`; one without is a notice (its
  /// token is 0). Returns once the server knows the subscription. Errors:
  /// `invalid_config` for a bad verb, `broker_unavailable`.
  expected<void> serve_control(const std::string& verb, std::function<void(delivery)> sink);

  /// Client side of a request to one dispatcher: sends `bytes` to
  /// `trellis.<ns>.ctl.<verb>.<partition>` and returns the reply. While no
  /// dispatcher listens the request is repeated until `timeout` has passed;
  /// then `broker_unavailable`. A dispatcher that listened but did not
  /// answer in time is `timeout`.
  expected<std::string> request_control(const std::string& verb, int partition, const std::string& bytes,
                                        std::chrono::milliseconds timeout);

  /// Scatter-gather: publishes `bytes` once on `trellis.<ns>.ctl.<verb>` with
  /// a fresh reply inbox and returns every reply that arrives within
  /// `window` (none when nobody listens), in arrival order. Errors: `broker_unavailable`.
  expected<std::vector<std::string>> gather_control(const std::string& verb, const std::string& bytes,
                                                    std::chrono::milliseconds window);

  // --- revocations (JetStream, the revoked stream) ---------------------------------

  /// Publishes a `revoked` notice (`bytes`) for `workflow_id` on
  /// `trellis.<ns>.ctl.revoked`, where the stream `TRELLIS_<NS>_REVOKED`
  /// keeps the last 10,000 for 7 days, and returns once JetStream stored it
  /// (signed, with a signer). Errors: `invalid_config` for a bad verb,
  /// `broker_unavailable`.
  expected<void> publish_revocation(const std::string& workflow_id, const std::string& bytes);

  /// Calls `sink` (from a NATS thread) with every notice that stream keeps,
  /// oldest first, then with each new one as it is stored: a worker started
  /// after a revocation still learns of it. An ordered consumer, which picks
  /// up where it was after a reconnect. A notice refused by signing is
  /// dropped and logged. Errors: `broker_unavailable`.
  expected<void> watch_revocations(std::function<void(std::string)> sink);

  // --- exhausted tasks ("worker lost") ---------------------------------------------

  /// Reads JetStream's MAX_DELIVERIES advisories for the task consumers of
  /// this namespace and calls `sink` (from the lost-task thread) with each
  /// exhausted task, read back from the task stream. This is how "worker
  /// lost" is detected: a task whose worker died on every delivery is never
  /// acked, and JetStream, after `max_deliver` attempts, neither delivers it
  /// again nor deletes it.
  ///
  /// The advisories are core NATS, so the stream `TRELLIS_<NS>_LOST` (limits
  /// retention, 7 days) keeps them; a dispatcher (`consume_events`) declares
  /// it at connect, and so does this call. They are read through the durable
  /// consumer `lost-<partition>` (created, at the stream's end, by the
  /// partition's first dispatcher), so each partition sees every advisory,
  /// and one fired while this partition had no dispatcher is read when it
  /// comes back. An advisory stays unacked until `settle_exhausted_task` or
  /// `pass_exhausted_task`; unacked, it comes again after `ack_wait`. One
  /// that is unreadable, or whose task is already gone from the task stream,
  /// is acked and skipped. A second call replaces the sink. Fails with
  /// broker_unavailable or invalid_config when the stream or consumer cannot
  /// be declared now; the thread keeps trying meanwhile. The transport's
  /// `close()` stops the thread.
  expected<void> watch_exhausted_tasks(std::function<void(exhausted_task)> sink);

  /// After the commit that recorded exhausted task `token`: removes the task
  /// from the task stream (`discard_exhausted_task`), then acks its
  /// advisory. If the removal fails, the advisory stays unacked and comes
  /// again after `ack_wait`. Unknown or settled tokens succeed.
  expected<void> settle_exhausted_task(std::uint64_t token);

  /// Acks the advisory of exhausted task `token` without touching the task:
  /// its workflow belongs to another partition, whose dispatcher settles it.
  void pass_exhausted_task(std::uint64_t token);

  /// Removes an exhausted task from the work-queue stream once it is
  /// dead-lettered. Removing one that is already gone succeeds.
  expected<void> discard_exhausted_task(std::uint64_t stream_sequence);

  // --- queues ------------------------------------------------------------------------

  /// Messages of `queue` not yet delivered plus those delivered and not
  /// acked (consumer lag, for metrics). A pack of tasks counts once.
  expected<std::uint64_t> queue_depth(const std::string& queue);
  /// Every task subject holding messages, by queue and task, counted as
  /// `queue_depth`: what `inspect` compares with the tasks live workers
  /// registered, to name the tasks nobody serves.
  expected<std::vector<queued_subject>> queued_tasks();

  // --- the connection -------------------------------------------------------------------

  /// Calls `listener` (from a NATS thread) each time the connection is
  /// re-established after a loss. Core NATS subscriptions survive a
  /// reconnect, but what was published meanwhile is gone; a listener asks
  /// again for what it may have missed.
  void on_reconnect(std::function<void()> listener);

  /// A name for this process in control answers: `<client_name>@<host>:<pid>`.
  std::string process_name() const;

  /// Whether the connection is up right now (false while reconnecting).
  bool is_connected() const;

  /// The most recent failure of a call that cannot return one (a fetch, an
  /// ack, the event thread, an advisory), for health checks and logs; empty
  /// when there was none. Secrets are masked.
  std::optional<error> last_error() const;

  /// The configuration in use, with secrets masked.
  std::string describe() const;

 private:
  friend class nats_link;
  explicit cluster_bus(nats_link& link) : link_(link) {}

  nats_link& link_;  // owns this face
};

/// The two faces of one NATS connection. Either keeps the connection (and
/// so the other face) alive; a weak_ptr to either expires when both went.
struct nats_endpoints {
  std::shared_ptr<nats_transport> transport;
  std::shared_ptr<cluster_bus> bus;
};

/// Connects as nats_transport::connect does and returns both faces: what a
/// worker or dispatcher process needs.
expected<nats_endpoints> connect_nats(nats_config cfg);

}  // namespace trellis::detail
