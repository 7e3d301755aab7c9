#pragma once

/// @file
/// The settings of one NATS connection (`nats_config`) and of its security
/// (`broker_security`, which `cluster_options` embeds as is). No NATS type
/// appears here. Streams, consumers and the values below are explained in
/// docs/decisions/0008-nats-jetstream-transport.md.

#include "trellis/defaults.hpp"
#include "trellis/error.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace trellis::detail {

class message_signer;

/// How a process proves who it is to the broker, and signs and checks its
/// messages. Declared once, here, and carried whole from the command line
/// (`cluster_options::security`) to the connection (`nats_config::security`).
/// `password` and `token` are secrets: printed only as `***`.
struct broker_security {
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
};

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

  /// Task queues whose durable consumers are declared at connect, so a
  /// configuration error shows there and not in a fetch loop. `fetch_tasks`
  /// declares the consumers of any other queue it is asked for.
  std::vector<std::string> task_queues;
  /// The tasks this process runs (a worker's registered names). Given, the
  /// process reads only their messages: one consumer per queue and task
  /// (`task-<hash>` on `trellis.<ns>.task.<queue>.<task>`, or with
  /// `all_task_queues` `all-task-<hash>` on `trellis.<ns>.task.*.<task>`),
  /// so a task no live worker registered waits in the stream (decision
  /// 0022). Empty: the process reads every task of its queues
  /// (`worker-<queue>`, `all-queues`), as tools and the transport's tests do.
  std::vector<std::string> task_names;
  /// Serve every queue (consumers filtered on `trellis.<ns>.task.*.<task>`,
  /// or `all-queues` on `trellis.<ns>.task.>`). JetStream refuses
  /// overlapping consumers on a work-queue stream, so within a namespace
  /// either every worker serves all queues or every worker names its
  /// queues; mixing fails at connect.
  bool all_task_queues = false;
  /// Declare the dispatcher's event consumer (`dispatcher-<partition>`) at
  /// connect. `consume_events` declares it too, but cannot report a failure.
  bool consume_events = false;
  /// Create or update the task and event streams at connect. A process that
  /// only submits over core NATS (`trellis submit`) turns this off: it has
  /// no business changing the streams, and in a loaded cluster the stream
  /// request alone can outlast `api_timeout`.
  bool declare_streams = true;
  /// Announce task events on `trellis.<ns>.lifecycle` (lifecycle_events.hpp):
  /// the dispatcher what it commits, a worker each task it starts. One core
  /// NATS message per 10 ms at most (lifecycle_channel queues them).
  bool task_events = true;

  /// Authentication, TLS and signing (see broker_security).
  broker_security security;

  /// How long a delivered message may go without an ack or an in-progress
  /// mark before JetStream delivers it again (why 5 s: defaults.hpp). The
  /// keep-alive thread marks what this process holds three times per
  /// AckWait, so a handler may run far longer.
  std::chrono::milliseconds ack_wait = defaults::ack_wait;
  /// Deliveries of one task message before JetStream gives up on it and
  /// sends a MAX_DELIVERIES advisory (see cluster_bus::watch_exhausted_tasks).
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
  /// The most JetStream messages one pull request asks for, on the event
  /// consumer and on a task consumer (where it also caps the `max` of one
  /// `fetch_tasks`). Not the worker's `fetch_batch`, which is how many tasks
  /// one handler thread asks `fetch_tasks` for.
  int max_messages_per_pull = 256;
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
  /// How long `connect` keeps trying while no server of `urls` answers at
  /// all (nats.c's "no server available"), with pauses from 100 ms doubling
  /// to 2 s; 0 tries once. Refused credentials, a failed TLS handshake and
  /// a bad option fail at once: trying again cannot help them.
  std::chrono::milliseconds connect_wait{0};
  /// Called once, from `connect`, when the first attempt found no server
  /// and it keeps trying (for a process to say so on stderr); may be empty.
  std::function<void(const std::string& why, std::chrono::milliseconds wait)> on_connect_wait;
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

/// `url` with its user part (`nats://user:password@host`) replaced by `***`.
std::string url_redacted(const std::string& url);

/// `urls`, each redacted, joined by commas: how errors and logs name servers.
std::string urls_redacted(const std::vector<std::string>& urls);

}  // namespace trellis::detail
