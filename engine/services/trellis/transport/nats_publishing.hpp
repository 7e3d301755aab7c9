#pragma once

/// @file
/// Internal to the NATS transport: publishing to JetStream and waiting for
/// the PubAcks. Task messages and outcome events go out in packs
/// (nats_publishing.cpp, "Packs"), task messages and revoke notices with a
/// `Nats-Msg-Id` for the broker's deduplication, and everything signed when
/// the configuration has a signer (nats_messages.hpp).

#include "trellis/error.hpp"
#include "trellis/transport/nats_handles.hpp"
#include "trellis/transport/nats_messages.hpp"
#include "trellis/transport/nats_uploads.hpp"
#include "trellis/transport/transport.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace trellis::detail {

class nats_connection;

/// One message to publish: payload, optional `Nats-Msg-Id`, and for a pack
/// the header that says what it packs and the number of envelopes in it.
/// Points into storage the caller keeps until `publish` returns.
struct outgoing {
  const std::string* bytes;
  const std::string* id;
  const std::string* pack_count = nullptr;
  const char* pack_header = event_pack_header;
};

/// The publishing contexts of one connection. One jsCtx per publishing call
/// at a time, so that js_PublishAsyncComplete waits for this call's PubAcks
/// only and the error handler's count belongs to this call; idle contexts
/// are kept for the next call.
///
/// Thread-safe: `mutex_` guards the pool (which context is idle), each
/// context's own mutex the failures its PubAck handler counted. Neither is
/// held while publishing.
class publisher_pool {
 public:
  /// Messages too large for one NATS message go through `uploads`.
  publisher_pool(nats_connection& conn, upload_store& uploads);
  ~publisher_pool();
  publisher_pool(const publisher_pool&) = delete;
  publisher_pool& operator=(const publisher_pool&) = delete;

  /// Publishes `items` to `subject` asynchronously and waits for every
  /// PubAck, or fails with broker_unavailable (`payload_too_large` for a
  /// message beyond NATS). `what` names the messages in errors ("task
  /// messages for queue 'q'").
  expected<void> publish(const std::string& subject, const std::vector<outgoing>& items, const std::string& what);

  /// `nats_transport::publish_tasks`: each task to
  /// `trellis.<ns>.task.<queue>.<task>`, large calls in packs of up to
  /// `task_pack_max` tasks of one name (id `<first id>+<count>`), a
  /// republished task alone. On success `messages` is empty.
  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages);

  /// `nats_transport::publish_events`: each to `trellis.<ns>.event.<its
  /// partition>`, one publish call per partition, in packs up to 512 KiB,
  /// without a message id.
  expected<void> publish_events(std::vector<outgoing_event> messages);

  /// Teardown, after the connection closed: destroys every context.
  void clear();

 private:
  struct publisher;

  /// A context's PubAck error handler (on the NATS thread that reads
  /// PubAcks): counts the failure for the call that owns the context.
  static void on_publish_error(jsCtx*, jsPubAckErr* pae, void* closure);
  expected<void> publish_task_list(const std::string& queue, const std::vector<const outgoing_task*>& messages);
  expected<publisher*> acquire();
  void release(publisher* p);

  nats_connection& conn_;
  upload_store& uploads_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<publisher>> publishers_;
  std::vector<publisher*> idle_;
};

}  // namespace trellis::detail
