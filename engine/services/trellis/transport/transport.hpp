#pragma once

/// @file
/// The one seam between Trellis' roles and the medium that carries their
/// messages. Two implementations: `inproc_transport` (embedded mode, no
/// broker) and the NATS JetStream transport (cluster mode). Nothing above this
/// interface knows which one runs.
///
/// Every message crossing it is an encoded envelope (envelope.hpp), in-process
/// too, so both modes exercise the same contract.
///
/// Delivery semantics: at least once. A task message stays owned by the
/// transport until `ack_task`; a worker acks only after its outcome event was
/// accepted by `publish_events` (which, for a durable transport, means stored).
/// The dispatcher tolerates duplicates of both tasks and events.

#include "trellis/error.hpp"
#include "trellis/lifecycle_events.hpp"
#include "trellis/transport/start_gate.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace trellis::detail {

/// A message handed to a consumer.
struct delivery {
  delivery() = default;
  /// A constructor rather than an aggregate, so that `delivery{bytes, token,
  /// count}` needs no `refused` (and -Wextra stays quiet about it).
  delivery(std::string b, std::uint64_t t, std::int32_t count = 1, std::optional<error> why = std::nullopt)
      : bytes(std::move(b)), token(t), delivery_count(count), refused(std::move(why)) {}

  std::string bytes;
  /// Transport-specific handle used to ack this delivery.
  std::uint64_t token = 0;
  /// 1 on first delivery; higher after redeliveries.
  std::int32_t delivery_count = 1;
  /// Set when the transport cannot vouch for the message (with a signing
  /// key: `unsigned_message`, `bad_signature`). The receiver must not act on
  /// its bytes: a task or event is dead-lettered with this reason. (A refused
  /// submission never reaches the sink: the transport answers it with the
  /// reason.) Empty for a message that may be used.
  std::optional<error> refused;
};

/// A task message to publish, with its id for broker-side deduplication.
struct outgoing_task {
  std::string id;
  std::string bytes;
  /// 0 (lowest) to 9 (highest); within a queue, higher goes first.
  int priority = 0;
  /// When the node became ready (for the publish-latency metric).
  std::chrono::steady_clock::time_point ready_at{};
  /// A copy of a task that may be out already: one a restore publishes
  /// again after a restart. A transport that deduplicates by id sends it
  /// alone under its own id, never in a pack (whose id depends on what else
  /// the call holds), so that the broker drops it when the first copy went
  /// out alone too.
  bool republished = false;
  /// The task's name: a cluster transport publishes it on the task's own
  /// subject, which only workers that registered it read.
  std::string task;
};

/// An outcome event to publish, addressed to the dispatcher partition that
/// owns its workflow (`trellis.<ns>.event.<partition>` in cluster mode; the
/// in-process transport has one dispatcher and ignores it).
struct outgoing_event {
  /// `event_partition_of(workflow id, partition count)` (partition.hpp): 0
  /// for an outcome that names no workflow (an unreadable task message).
  int partition = 0;
  /// The encoded outcome envelope.
  std::string bytes;
};

class transport {
 public:
  virtual ~transport() = default;

  /// Publishes task messages to `queue`, taking each one it publishes out of
  /// `messages`: on success `messages` is empty and the transport owns them
  /// (for a durable transport: stored); on failure it still holds every
  /// message not taken, for the caller to try again later.
  virtual expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) = 0;

  /// Takes up to `max` task messages from any of `queues` (empty: every
  /// queue), waiting at most
  /// `wait` for the first. Returns empty on timeout or after `close()`.
  virtual std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                            std::chrono::milliseconds wait) = 0;

  /// The outcome of this task message is durable; the transport may forget it.
  virtual void ack_task(const delivery& d) = 0;

  /// Publishes outcome events, each to the dispatcher of its partition, in
  /// order within a partition. Success means every one was accepted (for a
  /// durable transport: stored); on failure the caller publishes them all
  /// again (the dispatcher tolerates duplicates).
  virtual expected<void> publish_events(std::vector<outgoing_event> messages) = 0;

  /// The task of `d` is still being worked on (its outcome is not stored
  /// yet, e.g. while the broker refuses the outcome event): restart its
  /// redelivery clock without counting a delivery. Unknown tokens are
  /// ignored. By default nothing, for transports that never redeliver.
  virtual void touch_task(const delivery& d) { (void)d; }

  /// This process will not run the task of `d` (a drain stopped before it
  /// started): hand it back for any worker to take at once rather than
  /// after the redelivery clock. Unknown tokens are ignored. By default
  /// nothing: an in-process task not acked is ready again at the next
  /// start anyway.
  virtual void release_task(const delivery& d) { (void)d; }

  /// Reserves the next start of task `task` under a rate limit of one start
  /// every `interval_us` microseconds (start_gate.hpp): returns when its
  /// handler may start, in microseconds since the Unix epoch, at least
  /// `interval_us` after the start reserved before it by any worker that
  /// shares this transport's gate. A reserved slot is used or wasted, never
  /// given back (wasting one slows the task, never speeds it up). Errors:
  /// `broker_unavailable` when the gate cannot be reached; the caller tries
  /// again and never starts the task without a slot. By default the
  /// process's gate.
  virtual expected<std::int64_t> reserve_start(const std::string& task, std::int64_t interval_us) {
    return process_start_gate().reserve(task, interval_us, now_epoch_us());
  }

  /// Whether a queue hands out higher `outgoing_task::priority` first. A
  /// transport that cannot makes the dispatcher refuse workflows that set a
  /// priority, rather than ignore it. By default it can.
  virtual bool honours_priority() const { return true; }

  /// The largest message (task or event) this transport can carry, in
  /// bytes. A worker whose outcome is larger reports a `payload_too_large`
  /// rejection in its place, and a dispatcher whose task message is larger
  /// fails that step the same way, so neither retries what cannot pass.
  /// By default no limit beyond the envelope's own.
  virtual std::size_t max_message_bytes() const { return SIZE_MAX; }

  /// Work that is out already, for a dispatcher's restore (partition
  /// `partition`): the ids (`<workflow>:<node>:<attempt>`) of the task
  /// messages the broker still holds, queued or in a worker's hands, and of
  /// the tasks whose outcomes still wait for the dispatcher. Publishing one
  /// of them again would run it twice. Read tasks first, then outcomes: a
  /// worker publishes an outcome before it acks the task, so no task slips
  /// between the two reads. Signed messages count only with a good
  /// signature. A transport may read only part of what the broker holds
  /// (NATS: at most 200,000 sequence numbers per stream); what it misses is
  /// published again. In-process (the default) nothing outlives the
  /// process, so nothing is out.
  virtual expected<std::unordered_set<std::string>> work_already_out(int partition) {
    (void)partition;
    return std::unordered_set<std::string>{};
  }

  /// Installs the dispatcher's event sink, called with batches of events from
  /// a transport thread (or from the publisher's thread, in-process).
  virtual void consume_events(std::function<void(std::vector<delivery>)> sink) = 0;

  /// The dispatcher committed this event; the transport may forget it.
  virtual void ack_event(const delivery& d) = 0;

  /// Wakes every waiting `fetch_tasks` and makes later ones return at once.
  virtual void close() = 0;

  /// Installs the dispatcher's submission sink, called with each submit
  /// envelope a client sent over the transport (cluster mode). The delivery's
  /// token is what `answer_submission` takes once the workflow is committed.
  /// Embedded mode submits to the dispatcher actor directly, so by default
  /// there is nothing to consume.
  virtual void consume_submissions(std::function<void(delivery)> sink) { (void)sink; }

  /// Answers the client of submission `d` with `reply` (a msgpack map: {"id"}
  /// on success, {"error": {"type", "message"}} otherwise), after the commit.
  /// The transport may forget the submission then.
  virtual void answer_submission(const delivery& d, const std::string& reply) {
    (void)d;
    (void)reply;
  }

  /// Installs the dispatcher's control sink, called with each control
  /// request (control_messages.hpp) addressed to its partition or to every
  /// process (cluster mode). The delivery's token is what `answer_control`
  /// takes. Embedded mode has no control subjects: nothing to consume.
  virtual void consume_control(std::function<void(delivery)> sink) { (void)sink; }

  /// Answers control request `d` with `reply` (an encoded control reply).
  /// The transport may forget the request then.
  virtual void answer_control(const delivery& d, const std::string& reply) {
    (void)d;
    (void)reply;
  }

  /// Whether task events (lifecycle_events.hpp) go anywhere: the dispatcher
  /// and the workers build them only then.
  virtual bool announces_lifecycle() const { return false; }

  /// Announces task events, after the commit that made them true (a
  /// worker's `started` when the handler starts). Notices: never fails,
  /// never waits for a reader.
  virtual void announce_lifecycle(const std::vector<lifecycle_event>& events) { (void)events; }
};

}  // namespace trellis::detail
