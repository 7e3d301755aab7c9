#pragma once

/// @file
/// Cluster mode's transport: task queues and outcome events carried durably
/// by NATS JetStream (nats.c 3.4.1). No NATS type appears here; the handles
/// live behind a pimpl in nats_transport.cpp, the one file that speaks
/// nats.c. Streams, consumers and the values below are explained in
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
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

class message_signer;

/// Settings of one NATS connection and of the JetStream assets it declares.
/// Credentials are only ever printed by `redacted()`, which masks them.
struct nats_config {
  /// Servers to try, e.g. `nats://10.0.0.1:4222`. With more than one the
  /// client picks among them and fails over on reconnect.
  std::vector<std::string> urls{"nats://127.0.0.1:4222"};
  /// The Trellis namespace (`trellis.<ns>.…`); see subject_space::make.
  std::string ns = "default";
  /// The partition whose events this process consumes and whose
  /// submissions it takes, as a dispatcher (`trellis.<ns>.event.<partition>`,
  /// `trellis.<ns>.submit.<partition>`), or submits to, as a client.
  /// `publish_events` routes each event by its own partition.
  int partition = 0;
  /// The client name servers show in their monitoring.
  std::string client_name = "trellis";

  /// Task queues whose durable consumers (`worker-<queue>`) are declared at
  /// connect, so a configuration error shows there and not in a fetch loop.
  /// `fetch_tasks` declares the consumer of any other queue it is asked for.
  std::vector<std::string> task_queues;
  /// Serve every queue through the one consumer `all-queues` filtered on
  /// `trellis.<ns>.task.>`. JetStream refuses overlapping consumers on a
  /// work-queue stream, so within a namespace either every worker serves all
  /// queues or every worker names its queues; mixing fails at connect.
  bool all_task_queues = false;
  /// Declare the dispatcher's event consumer (`dispatcher-<partition>`) at
  /// connect. `consume_events` declares it too, but cannot report a failure.
  bool consume_events = false;
  /// Create or update the task and event streams at connect. A process that
  /// only submits over core NATS (`trellis submit`) turns this off: it has
  /// no business changing the streams, and in a loaded cluster the stream
  /// request alone can outlast `api_timeout`.
  bool declare_streams = true;

  /// User name for user/password authentication (empty: none).
  std::string user;
  /// Password for `user`. Never printed.
  std::string password;
  /// Authentication token (empty: none). Never printed.
  std::string token;
  /// Path of a `.creds` file (JWT + NKey seed) for decentralized auth.
  std::string creds_file;
  /// PEM file of CAs that sign the server's certificate; setting any TLS
  /// path makes the connection require TLS.
  std::string tls_ca_file;
  /// PEM client certificate chain, for servers that verify clients.
  std::string tls_cert_file;
  /// PEM private key of `tls_cert_file`. The path is printed, never the key.
  std::string tls_key_file;
  /// With a signer, every task message, event and submission this process
  /// sends carries the `Trellis-Signature` header, and every one it receives
  /// must carry a valid one: otherwise its delivery is marked `refused`
  /// (`unsigned_message`, `bad_signature`), and a submission is answered
  /// with that error at once. Null: nothing is signed or checked.
  std::shared_ptr<const message_signer> signer;

  /// How long a delivered message may stay unacked before JetStream
  /// delivers it again. Longer than the slowest handler plus reporting.
  std::chrono::milliseconds ack_wait{30'000};
  /// Deliveries of one task message before JetStream gives up on it and
  /// sends a MAX_DELIVERIES advisory (see nats_transport::watch_exhausted_tasks).
  /// The event consumer has no limit: see decision 0009.
  int max_deliver = 5;
  /// Unacked messages one consumer may have out at once, over all workers
  /// (JetStream MaxAckPending). Throughput ≤ this / (fetch-to-ack latency).
  int max_ack_pending = 20'000;
  /// Events (not messages: a pack holds many) handed to the dispatcher and
  /// not acked yet before the event consumer stops fetching; one fetch may
  /// pass it by what it brings. It waits for the dispatcher to commit and
  /// ack, so a dispatcher slower than its workers keeps a bounded backlog in
  /// memory and the rest stays in JetStream (decision 0011).
  std::size_t max_events_in_flight = 65'536;
  /// Async publishes one publishing thread may have waiting for their
  /// PubAck (nats.c PublishAsync.MaxPending); beyond it publishing stalls.
  int max_pending_publishes = 4096;
  /// The most messages one pull request asks for.
  int fetch_batch = 256;
  /// The most task envelopes `publish_tasks` packs into one JetStream
  /// message (`Trellis-Task-Pack`, docs/wire-protocol.md "Packs"); 1 never
  /// packs. A call packs only when it leaves at least 64 messages, so small
  /// groups still spread over every worker. A pack is delivered to one
  /// worker, whose `fetch_tasks` hands its tasks out one by one, and is
  /// acked when every one of them is: an unacked task brings the whole pack
  /// again.
  int task_pack_max = 32;
  /// How long a publish call waits for its PubAcks before it fails with
  /// broker_unavailable. Waiting for room under `max_pending_publishes` has
  /// the same bound, so one call takes at most about twice this.
  std::chrono::milliseconds publish_timeout{5'000};
  /// Window within which JetStream drops a task whose `Nats-Msg-Id` it
  /// already stored (stream `Duplicates`).
  std::chrono::milliseconds dedup_window{120'000};
  /// Timeout of the initial TCP/TLS connect, per server.
  std::chrono::milliseconds connect_timeout{2'000};
  /// Timeout of a JetStream API request (stream and consumer management).
  std::chrono::milliseconds api_timeout{5'000};
  /// Pause between reconnect attempts to the same server.
  std::chrono::milliseconds reconnect_wait{250};
  /// Random extra pause added to `reconnect_wait`, so clients do not all
  /// come back at once after a server restart.
  std::chrono::milliseconds reconnect_jitter{250};
  /// Reconnect attempts per server; -1 retries forever.
  int max_reconnect = -1;
  /// Bytes of publishes and acks buffered while reconnecting. Publishes
  /// still fail after `publish_timeout` if no PubAck comes back.
  int reconnect_buffer_bytes = 8 * 1024 * 1024;
  /// JetStream replicas of both streams (1 on a single server; 3 in a
  /// cluster for surviving a node).
  int replicas = 1;
  /// Streams on disk (true) or in memory (false: faster, lost on restart,
  /// which breaks promise 1; for benchmarks only).
  bool file_storage = true;

  /// The configuration as one line with every secret replaced by `***`
  /// (password, token, and the user part of URLs such as
  /// `nats://u:p@host`). Safe for logs and error messages.
  std::string redacted() const;
};

/// Checks ranges and names (namespace, queues, partition); the error names
/// the field (`errc::invalid_config`).
expected<void> validate(const nats_config& cfg);

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

/// The NATS JetStream transport. Every member function is thread-safe;
/// `fetch_tasks` may be called from many threads at once (each call uses
/// its own pull subscription from a pool).
///
/// Lifetime: `close()` stops fetching, the event thread and the lost-task
/// thread; acks are still accepted afterwards, so a draining worker can
/// finish. The destructor
/// flushes pending acks (bounded by `publish_timeout`) and closes the
/// connection; deliveries not acked by then are redelivered by JetStream.
class nats_transport final : public transport {
 public:
  /// Connects, then declares (creating or updating, idempotently) the task
  /// and event streams and the consumers `cfg` asks for. Fails with
  /// `errc::invalid_config` for a bad `cfg` or an asset JetStream refuses,
  /// and `errc::broker_unavailable` when no server accepts the connection
  /// (bad credentials included) or JetStream leaves the declarations
  /// unanswered three times (`api_timeout` each); messages never contain a
  /// secret.
  static expected<std::unique_ptr<nats_transport>> connect(nats_config cfg);

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

  /// Pulls up to `max` (capped at `fetch_batch`) tasks; the tasks of a pack
  /// beyond `max` wait in this process for the next call. `queues` empty:
  /// through `all-queues` if configured, else from every queue in
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
  /// The server's max_payload less room for headers; no limit while it is
  /// not known (never connected).
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

  /// Subscribes (queue group `dispatchers`) to `trellis.<ns>.submit.<partition>`
  /// on core NATS and calls `sink` from a NATS thread with each submission
  /// that carries a reply subject. Installing a second sink replaces the
  /// first. A subscription failure is kept in `last_error()`.
  void consume_submissions(std::function<void(delivery)> sink) override;

  /// Publishes `reply` on the reply subject of submission `d` (core NATS).
  /// Unknown tokens are ignored.
  void answer_submission(const delivery& d, const std::string& reply) override;

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

  /// Publishes `bytes` (core NATS, not stored) on `trellis.<ns>.done.<workflow_id>`.
  expected<void> publish_done(const std::string& workflow_id, const std::string& bytes);

  /// Subscribes to `trellis.<ns>.done.<workflow_id>` and calls `sink` (from
  /// a NATS thread) with each notification until the transport is destroyed.
  /// Returns once the server knows the subscription, so a notification sent
  /// after the return is not missed.
  expected<void> watch_done(const std::string& workflow_id, std::function<void(std::string)> sink);

  /// Dispatcher side of control (docs/cluster.md "Control"): subscribes on
  /// core NATS to `trellis.<ns>.ctl.*.<partition>` (queue group
  /// `dispatchers`) and to `trellis.<ns>.ctl.inspect` (every dispatcher), and
  /// calls `sink` from a NATS thread with each request that carries a reply
  /// subject. Installing a second sink replaces the first. A subscription
  /// failure is kept in `last_error()`.
  void consume_control(std::function<void(delivery)> sink) override;

  /// Publishes `reply` on the reply subject of control request `d` (core
  /// NATS). Unknown tokens, and notices that carry no reply subject, are
  /// ignored.
  void answer_control(const delivery& d, const std::string& reply) override;

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

  /// Calls `listener` (from a NATS thread) each time the connection is
  /// re-established after a loss. Core NATS subscriptions survive a
  /// reconnect, but what was published meanwhile is gone; a listener asks
  /// again for what it may have missed.
  void on_reconnect(std::function<void()> listener);

  /// A name for this process in control answers: `<client_name>@<host>:<pid>`.
  std::string process_name() const;

  /// Ends the watch of `workflow_id` (every one, if it was watched more than
  /// once): its sink is not called any more and the subscription's delivery
  /// thread ends. A client that waits for many workflows calls it after each.
  void unwatch_done(const std::string& workflow_id);

  /// `max_deliver`: a delivery whose `delivery_count` equals it is the last
  /// one JetStream makes.
  std::int32_t max_deliver() const noexcept;

  /// Whether JetStream will not deliver `d` again if it is not acked. The
  /// worker may treat such a delivery as its last chance (e.g. report a
  /// failure rather than a retry request when it is shutting down).
  bool is_last_delivery(const delivery& d) const noexcept { return d.delivery_count >= max_deliver(); }

  /// Reads JetStream's MAX_DELIVERIES advisories for the task consumers of
  /// this namespace and calls `sink` (from the transport's lost-task thread)
  /// with each exhausted task, read back from the task stream. This is how
  /// "worker lost" is detected: a task whose worker died on every delivery is
  /// never acked, and JetStream, after `max_deliver` attempts, neither
  /// delivers it again nor deletes it.
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
  /// be declared now; the thread keeps trying meanwhile.
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

  /// Messages of `queue` not yet delivered plus those delivered and not
  /// acked (consumer lag, for metrics). A pack of tasks counts once.
  expected<std::uint64_t> queue_depth(const std::string& queue);

  /// Whether the connection is up right now (false while reconnecting).
  bool is_connected() const;

  /// The most recent failure of a call that cannot return one (a fetch, an
  /// ack, the event thread, an advisory), for health checks and logs; empty
  /// when there was none. Secrets are masked.
  std::optional<error> last_error() const;

  /// The configuration in use, with secrets masked.
  std::string describe() const;

 private:
  struct impl;
  explicit nats_transport(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace trellis::detail
