#pragma once

/// @file
/// Cluster mode's transport: task queues and outcome events carried durably
/// by NATS JetStream (nats.c 3.4.1). `nats_transport` is the `transport`
/// interface (transport.hpp) and nothing else; what cluster processes say to
/// each other beyond it (submissions, done notices, control, revocations,
/// exhausted tasks, queue depth) is `cluster_bus` (cluster_bus.hpp). Both
/// are faces of one NATS connection (`connect_nats` gives both; each
/// `connect` gives one). No NATS type appears here: the connection and its
/// parts are `nats_link` (nats_link.hpp), which says who owns which thread
/// and lock. Streams, consumers and the settings are explained in
/// docs/decisions/0008-nats-jetstream-transport.md.
///
/// Delivery semantics (the `transport` contract, made concrete):
/// - `publish_tasks` and `publish_events` return success only after
///   JetStream acknowledged every message as stored. Anything else is
///   `errc::broker_unavailable`; nothing is dropped silently.
/// - A fetched task or consumed event stays owned by the broker until it is
///   acked. Unacked, it is delivered again after `ack_wait`, at most
///   `max_deliver` times in all; `delivery.delivery_count` says which
///   delivery this is (JetStream's NumDelivered).
/// - Task messages carry `Nats-Msg-Id` = `outgoing_task::id`: the broker drops
///   a re-published task whose id it stored within `dedup_window`.
/// - Priority does not exist in NATS: `outgoing_task::priority` is ignored
///   and a queue is served in publish order (see the decision record for the
///   per-band subjects we would add if priority matters in cluster mode).

#include "trellis/error.hpp"
#include "trellis/transport/nats_config.hpp"
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace trellis::detail {

class nats_link;

/// The NATS JetStream transport. Every member function is thread-safe;
/// `fetch_tasks` may be called from many threads at once (each call uses
/// its own pull subscription from a pool).
///
/// Lifetime: `close()` stops fetching, the event thread and the lost-task
/// thread; acks are still accepted afterwards, so a draining worker can
/// finish. When the last face of the connection goes (this and its
/// `cluster_bus`, which share ownership), pending acks are flushed (bounded
/// by `publish_timeout`) and the connection is closed; deliveries not acked
/// by then are redelivered by JetStream.
class nats_transport final : public transport {
 public:
  /// Connects, then declares (creating or updating, idempotently) the task
  /// and event streams and the consumers `cfg` asks for. Fails with
  /// `errc::invalid_config` for a bad `cfg` or an asset JetStream refuses,
  /// and `errc::broker_unavailable` when no server accepts the connection
  /// (bad credentials included) or JetStream leaves the declarations
  /// unanswered three times (`api_timeout` each); messages never contain a
  /// secret. For the cluster bus of the same connection, `connect_nats`.
  static expected<std::shared_ptr<nats_transport>> connect(nats_config cfg);

  ~nats_transport() override;
  nats_transport(const nats_transport&) = delete;
  nats_transport& operator=(const nats_transport&) = delete;

  /// Publishes asynchronously to `trellis.<ns>.task.<queue>` with
  /// `Nats-Msg-Id` = id, then waits for every PubAck. On success `messages`
  /// is empty. On failure it is left whole: some may be stored already, and
  /// publishing them again within `dedup_window` is dropped by the broker.
  /// Large calls go out in packs of up to `task_pack_max` tasks, whose id is
  /// `<first task's id>+<count>`: the same list packs the same way again.
  /// A task marked `republished` is never packed (see outgoing_task).
  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override;

  /// Pulls up to `max` (capped at `max_messages_per_pull`) tasks; the tasks
  /// of a pack beyond `max` wait in this process for the next call. `queues`
  /// empty: through `all-queues` if configured, else from every queue in
  /// `task_queues`. Several queues are polled in turn: first without
  /// waiting, then in slices of `wait`, so a message on any of them is seen
  /// within about `wait`. Returns empty on timeout, while disconnected, on
  /// a broker error, and after `close()`.
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait) override;

  /// Acks (explicit, not waiting for the server's confirmation). An ack lost
  /// to a disconnect means one more delivery after `ack_wait`, never a loss.
  /// Unknown or already acked tokens are ignored.
  void ack_task(const delivery& d) override;

  /// Sends JetStream's "in progress" for `d` (`+WPI`, not waiting): its
  /// AckWait starts again and its delivery count stays. Lost while
  /// disconnected, which costs one redelivery at most.
  void touch_task(const delivery& d) override;
  void release_task(const delivery& d) override;
  /// By compare-and-set on the namespace's key-value bucket
  /// `TRELLIS_<NS>_RATES` (nats_rates.hpp): one gate for every worker.
  expected<std::int64_t> reserve_start(const std::string& task, std::int64_t interval_us) override;
  /// False: a JetStream consumer delivers in publish order (decision 0008).
  bool honours_priority() const override { return false; }
  /// The largest upload (nats_uploads.hpp): a message larger than the
  /// server's max_payload travels in pieces.
  std::size_t max_message_bytes() const override;
  /// Reads the task stream and then partition `partition`'s events message
  /// by message (a work-queue stream takes no second consumer), so a
  /// restore costs one request per stored message.
  expected<std::unordered_set<std::string>> work_already_out(int partition) override;

  /// Publishes each event to `trellis.<ns>.event.<its partition>` (one
  /// publish call per partition, in order) and waits for every PubAck, so
  /// the events are stored before the caller acks its tasks (promise 1).
  /// Events carry no `Nats-Msg-Id`: the dispatcher tolerates duplicates, and
  /// a hash as id could drop a distinct event.
  expected<void> publish_events(std::vector<outgoing_event> messages) override;

  /// Starts the event thread: it pulls batches from `dispatcher-<partition>`
  /// and calls `sink` with each. Unacked events are delivered again after
  /// `ack_wait`. Installing a second sink replaces the first.
  void consume_events(std::function<void(std::vector<delivery>)> sink) override;

  /// Acks an event the dispatcher committed. As `ack_task`.
  void ack_event(const delivery& d) override;

  /// Wakes every `fetch_tasks` (within one fetch slice, at most 100 ms),
  /// makes later ones return empty at once, and stops the event and
  /// lost-task threads.
  void close() override;

  /// The dispatcher's side of submissions and control is part of the
  /// `transport` interface (the dispatcher actor installs these sinks and
  /// answers through them), but it is core NATS request/reply, served by
  /// the cluster bus of this connection: these four forward to
  /// cluster_bus::consume_submissions, answer_submission, consume_control
  /// and answer_control (see there).
  void consume_submissions(std::function<void(delivery)> sink) override;
  void answer_submission(const delivery& d, const std::string& reply) override;
  void consume_control(std::function<void(delivery)> sink) override;
  void answer_control(const delivery& d, const std::string& reply) override;
  bool announces_lifecycle() const override;
  void announce_lifecycle(const std::vector<lifecycle_event>& events) override;

  /// `max_deliver`: a delivery whose `delivery_count` equals it is the last
  /// one JetStream makes.
  std::int32_t max_deliver() const noexcept;

  /// Whether JetStream will not deliver `d` again if it is not acked. The
  /// worker may treat such a delivery as its last chance (e.g. report a
  /// failure rather than a retry request when it is shutting down).
  bool is_last_delivery(const delivery& d) const noexcept { return d.delivery_count >= max_deliver(); }

 private:
  friend class nats_link;
  explicit nats_transport(nats_link& link) : link_(link) {}

  nats_link& link_;  // owns this face
};

}  // namespace trellis::detail
