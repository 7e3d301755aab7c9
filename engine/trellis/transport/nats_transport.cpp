#include "trellis/transport/nats_transport.hpp"

#include "trellis/detail/value_codec.hpp"
#include "trellis/envelope.hpp"
#include "trellis/signing.hpp"
#include "trellis/transport/pack_codec.hpp"
#include "trellis/transport/subjects.hpp"

#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <unistd.h>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// RAII for every nats.c handle: a unique_ptr whose deleter is the _Destroy.

template <class T, void (*Destroy)(T*)>
struct nats_deleter {
  void operator()(T* p) const noexcept {
    if (p != nullptr) {
      Destroy(p);
    }
  }
};

template <class T, void (*Destroy)(T*)>
using nats_handle = std::unique_ptr<T, nats_deleter<T, Destroy>>;

using options_ptr = nats_handle<natsOptions, natsOptions_Destroy>;
using connection_ptr = nats_handle<natsConnection, natsConnection_Destroy>;
using js_ptr = nats_handle<jsCtx, jsCtx_Destroy>;
using subscription_ptr = nats_handle<natsSubscription, natsSubscription_Destroy>;
using message_ptr = nats_handle<natsMsg, natsMsg_Destroy>;
using stream_info_ptr = nats_handle<jsStreamInfo, jsStreamInfo_Destroy>;
using consumer_info_ptr = nats_handle<jsConsumerInfo, jsConsumerInfo_Destroy>;
using metadata_ptr = nats_handle<jsMsgMetaData, jsMsgMetaData_Destroy>;

/// A natsMsgList filled by a fetch; destroys whatever is still in it.
struct message_list {
  natsMsgList list{nullptr, 0};
  message_list() = default;
  ~message_list() { natsMsgList_Destroy(&list); }
  message_list(const message_list&) = delete;
  message_list& operator=(const message_list&) = delete;
};

// Longest a fetch blocks in nats.c before we look at `closed_` again: close()
// cannot interrupt a natsSubscription_Fetch, so this bounds its wake-up.
constexpr milliseconds max_fetch_slice{100};
// A no-wait pull request is answered at once by the server; this only bounds
// the wait for that answer.
constexpr milliseconds no_wait_expiry{200};
// Pacing of the event thread after a broker error, so a dead connection does
// not spin a core. Interrupted by close().
constexpr milliseconds event_retry_pause{200};
// How long a submission request waits for its answer before it is sent
// again, doubling up to the second value (see request_submission).
constexpr milliseconds first_submission_wait{1000};
constexpr milliseconds max_submission_wait{8000};
// Control requests received and not answered yet that a process remembers
// the reply subject of; beyond this the oldest are forgotten.
constexpr std::size_t max_open_control_requests = 10'000;
// Tries of the stream and consumer declarations at connect when JetStream
// does not answer in time (each bounded by api_timeout).
constexpr int declare_attempts = 3;
// How long the lost stream keeps a MAX_DELIVERIES advisory: long enough for
// a partition's dispatcher to come back from any outage worth waiting for.
constexpr std::chrono::hours lost_advisory_max_age{24 * 7};
// The revoked stream keeps as many notices as a worker remembers
// (worker_activity), for as long as the lost stream keeps advisories.
constexpr const char* revoked_verb = "revoked";
constexpr std::int64_t revocations_kept = 10'000;
constexpr std::chrono::hours revocation_max_age{24 * 7};

std::int64_t to_nanos(milliseconds d) { return static_cast<std::int64_t>(d.count()) * 1'000'000; }

bool is_no_message(natsStatus s) { return s == NATS_TIMEOUT || s == NATS_NOT_FOUND; }

/// The status text plus nats.c's thread-local detail, e.g.
/// "Authorization Violation" or "stalled with too many outstanding async
/// published messages". May contain server-supplied text, so callers pass it
/// through impl::mask before it leaves this file.
std::string status_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  natsStatus last_status = NATS_OK;
  const char* raw = nats_GetLastError(&last_status);
  std::string detail = raw != nullptr ? raw : "";
  // nats.c prefixes its detail with the source location, "(conn.c:1905): ".
  if (auto end = detail.find("): "); !detail.empty() && detail.front() == '(' && end != std::string::npos) {
    detail.erase(0, end + 3);
  }
  if (!detail.empty() && last_status == s && detail != text) {
    text += " (" + detail + ")";
  }
  if (jerr != 0) {
    text += " [JetStream error " + std::to_string(static_cast<int>(jerr)) + "]";
  }
  return text;
}

std::string url_redacted(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  auto slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) {
    return url;
  }
  return url.substr(0, start) + "***@" + url.substr(at + 1);
}

std::string join_urls(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& u : urls) {
    out += (out.empty() ? "" : ",") + url_redacted(u);
  }
  return out;
}

/// The headers that mark a message as a pack of events or of tasks and count
/// them (see "Packs" below).
constexpr const char* event_pack_header = "Trellis-Event-Pack";
constexpr const char* task_pack_header = "Trellis-Task-Pack";

// ---------------------------------------------------------------------------
// Signing (trellis/signing.hpp): the signature rides in a header, so a
// signed message is published as a natsMsg; unsigned ones keep the plain path.

/// js_PublishAsync of `body`, with headers when there are any: its signature
/// (Trellis-Signature) when `signer` is set, and the number of envelopes of
/// a pack (header `pack_header`, see pack_frames) when `pack_count` is set.
natsStatus publish_one_async(jsCtx* js, const std::string& subject, const std::string& body,
                             const message_signer* signer, const char* pack_header, const std::string* pack_count,
                             jsPubOptions* po) {
  if (signer == nullptr && pack_count == nullptr) {
    return js_PublishAsync(js, subject.c_str(), body.data(), static_cast<int>(body.size()), po);
  }
  natsMsg* raw = nullptr;
  auto s = natsMsg_Create(&raw, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  message_ptr msg{raw};
  if (s == NATS_OK && signer != nullptr) {
    s = natsMsgHeader_Set(msg.get(), signature_header, signer->sign(body).c_str());
  }
  if (s == NATS_OK && pack_count != nullptr) {
    s = natsMsgHeader_Set(msg.get(), pack_header, pack_count->c_str());
  }
  if (s == NATS_OK) {
    raw = msg.release();
    s = js_PublishMsgAsync(js, &raw, po);
    msg.reset(raw);  // null once nats.c took the message
  }
  return s;
}

/// Why a received message must not be used (no signature, a wrong one), or
/// nothing: always nothing without a signer.
std::optional<error> refusal_of(const message_signer* signer, natsMsg* m) {
  if (signer == nullptr) {
    return std::nullopt;
  }
  const char* signature = nullptr;
  if (natsMsgHeader_Get(m, signature_header, &signature) != NATS_OK) {
    signature = nullptr;
  }
  auto ok = signer->verify({natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))}, signature);
  if (ok) {
    return std::nullopt;
  }
  return ok.error();
}

// ---------------------------------------------------------------------------
// Async publishing. One jsCtx per publishing call at a time, so that
// js_PublishAsyncComplete waits for this call's PubAcks only and the error
// handler's count belongs to this call.

struct publisher {
  js_ptr ctx;
  std::mutex mutex;
  std::size_t failures = 0;
  std::string first_failure;

  void reset() {
    std::lock_guard<std::mutex> guard{mutex};
    failures = 0;
    first_failure.clear();
  }
};

// Runs on the NATS thread that reads PubAcks, for each negative PubAck. A
// late callback for a previous call (it unlocks the context while running)
// can only add a failure to the next call: a spurious broker_unavailable,
// which makes the caller publish again, never a lost message.
void on_publish_error(jsCtx*, jsPubAckErr* pae, void* closure) {
  auto* p = static_cast<publisher*>(closure);
  std::lock_guard<std::mutex> guard{p->mutex};
  ++p->failures;
  if (p->first_failure.empty()) {
    p->first_failure = natsStatus_GetText(pae->Err);
    if (pae->ErrText != nullptr && *pae->ErrText != '\0') {
      p->first_failure += std::string{": "} + pae->ErrText;
    }
    if (pae->ErrCode != 0) {
      p->first_failure += " [JetStream error " + std::to_string(static_cast<int>(pae->ErrCode)) + "]";
    }
  }
}

/// One message to publish: payload, optional `Nats-Msg-Id`, and for a pack
/// the header that says what it packs and the number of envelopes in it.
struct outgoing {
  const std::string* bytes;
  const std::string* id;
  const std::string* pack_count = nullptr;
  const char* pack_header = event_pack_header;
};

// ---------------------------------------------------------------------------
// Packs. Every JetStream message costs the broker a store, a PubAck, a
// delivery and an ack, which made it the cluster's bottleneck (see
// docs/performance.md). So publish_events packs the events of one call, and
// publish_tasks the tasks of a large call, into fewer messages; the consumer
// unpacks them into one delivery each, and the pack is acked once every
// envelope in it is acked, so ack-after-commit (events) and
// ack-after-outcome-stored (tasks) hold envelope by envelope. An unacked
// envelope brings the whole pack again; the dispatcher ignores what it
// already committed. A message without a pack header is one envelope.

// Below NATS's default 1 MiB max_payload, so a pack never fails where its
// envelopes alone would not; a larger one travels alone.
constexpr std::size_t max_event_pack_bytes = 512 * 1024;
// publish_tasks packs only while the call still leaves this many messages,
// so that a small group spreads over every worker thread.
constexpr std::size_t min_task_messages_per_call = 64;

std::string pack_events(const std::vector<std::string>& events, std::size_t first, std::size_t last) {
  return pack_frames(first, last, [&](std::size_t i) -> const std::string& { return events[i]; });
}

/// The envelopes of `m` when it is a pack (it carries either pack header),
/// an error when its header or frames do not parse (pack_codec.hpp), nothing
/// when it is not a pack.
std::optional<expected<std::vector<std::string>>> unpack_message(natsMsg* m) {
  std::string_view body{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))};
  for (const char* header : {event_pack_header, task_pack_header}) {
    const char* text = nullptr;
    if (natsMsgHeader_Get(m, header, &text) == NATS_OK && text != nullptr) {
      auto count = parse_pack_count(text, body.size());
      if (!count) {
        return expected<std::vector<std::string>>{count.error()};
      }
      return unpack_frames(body, *count);
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Pull subscriptions. nats.c refuses concurrent fetches on one subscription,
// so each consumer keeps a pool; a fetch borrows one.

struct consumer_binding {
  std::string label;     // "queue 'payments'", "every queue", "partition 0 events"
  std::string stream;
  std::string consumer;
  std::string filter;
  std::mutex mutex;
  // Owned here until the transport is destroyed: a natsMsg refers to its
  // subscription without holding it, and unacked messages may outlive any
  // one fetch.
  std::vector<subscription_ptr> owned;
  std::vector<natsSubscription*> idle;
  // Tasks of packs fetched beyond what their fetch_tasks call asked for,
  // handed out first by the next call (they are unacked, so a process that
  // stops lets JetStream deliver their packs again).
  std::deque<delivery> ready;
  // Tasks per message expected of the next task fetch, to size its pull
  // request in messages (see keep_batch); 0 until the first fetch.
  std::size_t envelopes_per_message = 0;
};

}  // namespace

// ---------------------------------------------------------------------------

struct nats_transport::impl {
  nats_config cfg;
  subject_space names;
  std::string event_subject;

  connection_ptr conn;
  js_ptr js;  // management, pull subscriptions, acks, advisories

  std::mutex publishers_mutex;
  std::vector<std::unique_ptr<publisher>> publishers;
  std::vector<publisher*> idle_publishers;

  std::mutex bindings_mutex;
  std::map<std::string, std::unique_ptr<consumer_binding>> task_bindings;  // by queue
  std::unique_ptr<consumer_binding> all_binding;
  std::unique_ptr<consumer_binding> event_binding;
  std::atomic<std::size_t> rotation{0};

  /// A delivered message and how many of its deliveries (one, or the events
  /// of a pack) are not acked yet.
  struct inflight_message {
    message_ptr msg;
    std::size_t unacked = 1;
  };
  std::mutex inflight_mutex;
  std::unordered_map<std::uint64_t, std::shared_ptr<inflight_message>> inflight;
  std::uint64_t next_token = 1;
  /// Tokens of the events handed to the current event sink and not acked
  /// yet; the event loop waits on `events_acked` while there are
  /// `max_events_in_flight` of them. A new sink (a restarted dispatcher)
  /// starts from none: its predecessor's deliveries come again after
  /// AckWait with new tokens. Guarded by inflight_mutex.
  std::unordered_set<std::uint64_t> unacked_events;
  std::condition_variable events_acked;

  std::atomic<bool> closed{false};
  std::mutex close_mutex;
  std::condition_variable close_cv;

  std::mutex sink_mutex;
  std::function<void(std::vector<delivery>)> sink;
  std::thread event_thread;

  // "Worker lost" (dispatcher side): the lost stream's advisories, read by
  // the lost-task thread; each one held here, unacked, until its task is
  // settled or passed. Keyed by the advisory's sequence in the lost stream,
  // so a redelivery replaces the copy it repeats.
  struct lost_advisory {
    message_ptr msg;
    std::uint64_t task_sequence = 0;
  };
  std::mutex lost_mutex;
  std::function<void(exhausted_task)> exhausted_sink;
  std::unique_ptr<consumer_binding> lost_binding;  // under bindings_mutex
  std::unordered_map<std::uint64_t, lost_advisory> lost_unacked;
  std::thread lost_thread;

  // Submissions (dispatcher side): core NATS request/reply.
  std::mutex submit_mutex;
  std::function<void(delivery)> submit_sink;
  subscription_ptr submit_sub;
  std::unordered_map<std::uint64_t, std::string> submit_replies;  // token -> reply subject
  std::uint64_t next_submit_token = 1;

  // Completion notifications (client side): one subscription per workflow watched.
  struct done_watch {
    std::string workflow_id;
    std::function<void(std::string)> sink;
    subscription_ptr sub;
    // Unsubscribed by unwatch_done; the object stays until the transport
    // goes, since a callback may still be running when unwatch returns.
    bool ended = false;
  };
  std::mutex done_mutex;
  std::vector<std::unique_ptr<done_watch>> done_watches;

  // Control (core NATS): requests with a reply subject, and notices.
  struct control_watch {
    impl* self = nullptr;
    std::function<void(delivery)> sink;
    subscription_ptr sub;
  };
  std::mutex control_mutex;
  std::vector<std::unique_ptr<control_watch>> control_watches;
  std::map<std::uint64_t, std::string> control_replies;  // token -> reply subject, oldest first
  std::uint64_t next_control_token = 1;
  bool dispatcher_control_subscribed = false;
  std::mutex control_sink_mutex;
  std::function<void(delivery)> dispatcher_control_sink;

  std::mutex reconnect_mutex;
  std::vector<std::function<void()>> reconnect_listeners;

  // Revocations (worker side): an ordered consumer of the revoked stream.
  struct revocation_watch {
    impl* self = nullptr;
    std::function<void(std::string)> sink;
    subscription_ptr sub;
    std::mutex mutex;
    std::condition_variable advanced;
    std::uint64_t read_up_to = 0;  // stream sequence of the last notice handed over
  };
  std::mutex revocation_mutex;
  std::unique_ptr<revocation_watch> revocations;

  mutable std::mutex error_mutex;
  std::optional<error> last_error;

  impl(nats_config c, subject_space n) : cfg(std::move(c)), names(std::move(n)) {}

  ~impl() {
    stop();
    // Callbacks of these subscriptions use this object: let running ones
    // finish before anything goes.
    auto drain = [this](subscription_ptr& sub) {
      if (sub && natsSubscription_Drain(sub.get()) == NATS_OK) {
        natsSubscription_WaitForDrainCompletion(sub.get(), cfg.api_timeout.count());
      }
    };
    {
      std::lock_guard<std::mutex> guard{reconnect_mutex};
      reconnect_listeners.clear();
    }
    drain(submit_sub);
    for (auto& w : done_watches) {
      if (!w->ended) {
        drain(w->sub);
      }
    }
    for (auto& w : control_watches) {
      drain(w->sub);
    }
    if (revocations) {
      drain(revocations->sub);
    }
    // Push buffered acks out before the connection goes: an ack lost here
    // only costs a redelivery, but there is no reason to lose it.
    if (conn && natsConnection_Status(conn.get()) == NATS_CONN_STATUS_CONNECTED) {
      natsConnection_FlushTimeout(conn.get(), cfg.publish_timeout.count());
    }
    if (conn) {
      natsConnection_Close(conn.get());
    }
    // Messages before the subscriptions they point to, contexts before the
    // connection they belong to.
    {
      std::lock_guard<std::mutex> guard{inflight_mutex};
      inflight.clear();
    }
    {
      std::lock_guard<std::mutex> guard{lost_mutex};
      lost_unacked.clear();
    }
    lost_binding.reset();
    submit_sub.reset();
    done_watches.clear();
    control_watches.clear();
    event_binding.reset();
    all_binding.reset();
    task_bindings.clear();
    idle_publishers.clear();
    publishers.clear();
    js.reset();
    conn.reset();
  }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  // --- errors ----------------------------------------------------------------

  /// `text` with every secret of the configuration replaced by ***.
  std::string mask(std::string text) const {
    auto replace_all = [&text](const std::string& secret) {
      if (secret.empty()) {
        return;
      }
      for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
        text.replace(at, secret.size(), "***");
      }
    };
    for (const auto& u : cfg.urls) {
      auto scheme = u.find("://");
      auto start = scheme == std::string::npos ? 0 : scheme + 3;
      if (auto at = u.find('@', start); at != std::string::npos && url_redacted(u) != u) {
        replace_all(u.substr(start, at - start));  // "user:password" of nats://user:password@host
      }
    }
    replace_all(cfg.password);
    replace_all(cfg.token);
    return text;
  }

  error broker_error(const std::string& what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) const {
    auto code = s == NATS_MAX_PAYLOAD ? errc::payload_too_large : errc::broker_unavailable;
    return error{code, mask(what + ": " + status_text(s, jerr))};
  }

  /// A JetStream API refusal (the server answered with an error code) is a
  /// configuration problem; no answer at all is an unavailable broker.
  error api_error(const std::string& what, natsStatus s, jsErrCode jerr) const {
    if (jerr != 0) {
      return error{errc::invalid_config, mask(what + ": " + status_text(s, jerr))};
    }
    auto text = what + ": " + status_text(s, jerr);
    if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT) {
      text += "; is JetStream enabled on the server (nats-server -js)?";
    }
    return error{errc::broker_unavailable, mask(text)};
  }

  void remember(error e) {
    std::lock_guard<std::mutex> guard{error_mutex};
    last_error = std::move(e);
  }

  jsOptions api_options() const {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg.api_timeout.count();
    return jo;
  }

  // --- connect and declare ----------------------------------------------------

  expected<void> connect() {
    natsOptions* raw = nullptr;
    if (auto s = natsOptions_Create(&raw); s != NATS_OK) {
      return broker_error("cannot create NATS options", s);
    }
    options_ptr opts{raw};
    auto where = "NATS at " + join_urls(cfg.urls);
    auto fail = [&](const std::string& what, natsStatus s) -> expected<void> {
      return broker_error("cannot " + what + " for " + where, s);
    };
    std::vector<const char*> servers;
    for (const auto& u : cfg.urls) {
      servers.push_back(u.c_str());
    }
    if (auto s = natsOptions_SetServers(opts.get(), servers.data(), static_cast<int>(servers.size())); s != NATS_OK) {
      return error{errc::invalid_config, mask("nats urls '" + join_urls(cfg.urls) + "': " + status_text(s))};
    }
    natsOptions_SetName(opts.get(), cfg.client_name.c_str());
    natsOptions_SetTimeout(opts.get(), cfg.connect_timeout.count());
    natsOptions_SetAllowReconnect(opts.get(), true);
    natsOptions_SetMaxReconnect(opts.get(), cfg.max_reconnect);
    natsOptions_SetReconnectWait(opts.get(), cfg.reconnect_wait.count());
    natsOptions_SetReconnectJitter(opts.get(), cfg.reconnect_jitter.count(), cfg.reconnect_jitter.count());
    natsOptions_SetReconnectBufSize(opts.get(), cfg.reconnect_buffer_bytes);
    // Management requests fail at once on a disconnect instead of waiting
    // out their timeout; publishes and pull requests are buffered instead.
    natsOptions_SetFailRequestsOnDisconnect(opts.get(), true);
    // Write every publish, ack and pull request to the socket at once.
    // Otherwise nats.c's flusher thread holds them about 1 ms to coalesce
    // writes, and a one-task round trip pays that wait on each unflushed hop
    // (the dispatcher's event ack and done notice, every pull request):
    // trellis_bench_nats measured a p50 of 2.0 ms with the delay and 1.4-1.7
    // ms without (docs/performance.md). No-op throughput did not change,
    // since tasks and events already travel in packs.
    natsOptions_SetSendAsap(opts.get(), true);
    natsOptions_SetReconnectedCB(opts.get(), &impl::on_reconnected, this);
    if (!cfg.user.empty()) {
      if (auto s = natsOptions_SetUserInfo(opts.get(), cfg.user.c_str(), cfg.password.c_str()); s != NATS_OK) {
        return fail("set the user", s);
      }
    }
    if (!cfg.token.empty()) {
      if (auto s = natsOptions_SetToken(opts.get(), cfg.token.c_str()); s != NATS_OK) {
        return fail("set the token", s);
      }
    }
    if (!cfg.creds_file.empty()) {
      if (auto s = natsOptions_SetUserCredentialsFromFiles(opts.get(), cfg.creds_file.c_str(), nullptr);
          s != NATS_OK) {
        return error{errc::invalid_config, mask("creds file '" + cfg.creds_file + "': " + status_text(s))};
      }
    }
    bool tls = !cfg.tls_ca_file.empty() || !cfg.tls_cert_file.empty();
    if (tls) {
      if (auto s = natsOptions_SetSecure(opts.get(), true); s != NATS_OK) {
        return fail("enable TLS", s);
      }
    }
    if (!cfg.tls_ca_file.empty()) {
      if (auto s = natsOptions_LoadCATrustedCertificates(opts.get(), cfg.tls_ca_file.c_str()); s != NATS_OK) {
        return error{errc::invalid_config, mask("TLS CA file '" + cfg.tls_ca_file + "': " + status_text(s))};
      }
    }
    if (!cfg.tls_cert_file.empty()) {
      if (auto s = natsOptions_LoadCertificatesChain(opts.get(), cfg.tls_cert_file.c_str(), cfg.tls_key_file.c_str());
          s != NATS_OK) {
        return error{errc::invalid_config, mask("TLS certificate '" + cfg.tls_cert_file + "' / key '" +
                                                cfg.tls_key_file + "': " + status_text(s))};
      }
    }
    natsConnection* nc = nullptr;
    if (auto s = natsConnection_Connect(&nc, opts.get()); s != NATS_OK) {
      std::string who = cfg.user.empty() ? "" : " as user '" + cfg.user + "'";
      if (s == NATS_CONNECTION_AUTH_FAILED) {
        // Said plainly: retrying cannot help, the credentials must change.
        return error{errc::broker_unavailable,
                     mask("authorization violation: " + where + " refused the credentials of this client" + who +
                          " (check the user and password, the token or the creds file)")};
      }
      return broker_error("cannot connect to " + where + who, s);
    }
    conn.reset(nc);
    jsCtx* ctx = nullptr;
    auto jo = api_options();
    if (auto s = natsConnection_JetStream(&ctx, conn.get(), &jo); s != NATS_OK) {
      return broker_error("cannot open a JetStream context on " + where, s);
    }
    js.reset(ctx);
    return {};
  }

  /// The fields every Trellis stream shares: a name, one subject (`subject`
  /// points to its C string, which must outlive `sc`), a retention policy,
  /// and the configured storage and replicas.
  void init_stream(jsStreamConfig& sc, const std::string& name, const char** subject,
                   jsRetentionPolicy retention) const {
    jsStreamConfig_Init(&sc);
    sc.Name = name.c_str();
    sc.Subjects = subject;
    sc.SubjectsLen = 1;
    sc.Retention = retention;
    sc.Storage = cfg.file_storage ? js_FileStorage : js_MemoryStorage;
    sc.Replicas = cfg.replicas;
  }

  expected<void> declare_stream(const std::string& name, const std::string& subject) {
    const char* subjects[] = {subject.c_str()};
    jsStreamConfig sc;
    // Work queue: a message is removed once acked, and no two consumers may
    // overlap, so each message has exactly one consumer (one queue, or one
    // dispatcher partition).
    init_stream(sc, name, subjects, js_WorkQueuePolicy);
    sc.Duplicates = to_nanos(cfg.dedup_window);
    return add_or_update_stream(sc, name, subject);
  }

  /// Creates the stream `sc` describes, or updates it when it exists with
  /// another configuration (say, a new dedup window or replica count).
  expected<void> add_or_update_stream(jsStreamConfig& sc, const std::string& name, const std::string& subject) {
    auto jo = api_options();
    jsStreamInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_AddStream(&info, js.get(), &sc, &jo, &jerr);
    stream_info_ptr added{info};
    if (s == NATS_OK) {
      return {};
    }
    // Two processes declaring the same stream at once: the loser is told
    // either that the name exists or, by nats-server 2.9 while the winner's
    // stream is still being created, that its subjects overlap. Either way
    // the stream is there; the update below checks that it is this one.
    if (jerr != JSStreamNameExistErr && jerr != JSStreamSubjectOverlapErr) {
      return api_error("cannot create stream " + name + " on " + subject, s, jerr);
    }
    const auto create_error = api_error("cannot create stream " + name + " on " + subject, s, jerr);
    const bool overlapped = jerr == JSStreamSubjectOverlapErr;
    info = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&info, js.get(), &sc, &jo, &jerr);
    stream_info_ptr updated{info};
    if (s != NATS_OK) {
      if (overlapped) {
        return create_error;  // another stream holds these subjects
      }
      return api_error("stream " + name + " exists with a configuration that cannot be updated", s, jerr);
    }
    return {};
  }

  expected<void> declare_consumer(const consumer_binding& b) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = b.consumer.c_str();
    // A lost-task consumer starts at the stream's end: created when its
    // partition's first dispatcher connects, before that partition has
    // published any task, it owes nothing from before. Replaying the older
    // advisories could match their sequences to other tasks if the task
    // stream was ever created anew.
    cc.DeliverPolicy = b.stream == names.lost_stream() ? js_DeliverNew : js_DeliverAll;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = to_nanos(cfg.ack_wait);
    // Events and lost-task advisories are never given up on (-1: no limit):
    // a dispatcher that dies while holding them is not their fault, and one
    // JetStream stopped delivering would leave its workflow waiting forever.
    cc.MaxDeliver = b.stream == names.task_stream() ? cfg.max_deliver : -1;
    cc.MaxAckPending = cfg.max_ack_pending;
    cc.FilterSubject = b.filter.c_str();
    auto jo = api_options();
    jsConsumerInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_AddConsumer(&info, js.get(), b.stream.c_str(), &cc, &jo, &jerr);
    consumer_info_ptr added{info};
    if (s == NATS_OK) {
      return {};
    }
    if (jerr != JSConsumerNameExistErr) {
      auto e = api_error("cannot create consumer " + b.consumer + " of " + b.stream + " for " + b.label, s, jerr);
      if (e.code() == errc::invalid_config) {
        // The usual cause: workers of one namespace mixing `all_task_queues`
        // with named queues, which a work-queue stream forbids.
        return error{e.code(), e.message() + "; within a namespace either every worker serves all queues or "
                                             "every worker names its queues"};
      }
      return e;
    }
    info = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateConsumer(&info, js.get(), b.stream.c_str(), &cc, &jo, &jerr);
    consumer_info_ptr updated{info};
    if (s != NATS_OK) {
      return api_error("consumer " + b.consumer + " exists with a configuration that cannot be updated", s, jerr);
    }
    return {};
  }

  /// broker_unavailable if the connection is not up right now, else nothing.
  std::optional<error> unless_connected(const std::string& what) const {
    if (natsConnection_Status(conn.get()) == NATS_CONN_STATUS_CONNECTED) {
      return std::nullopt;
    }
    return error{errc::broker_unavailable, "cannot " + what + ": not connected to NATS (reconnecting)"};
  }

  expected<std::unique_ptr<consumer_binding>> make_binding(std::string label, std::string stream, std::string consumer,
                                                          std::string filter) {
    if (auto down = unless_connected("declare consumer " + consumer + " for " + label)) {
      return *down;
    }
    auto b = std::make_unique<consumer_binding>();
    b->label = std::move(label);
    b->stream = std::move(stream);
    b->consumer = std::move(consumer);
    b->filter = std::move(filter);
    if (auto ok = declare_consumer(*b); !ok) {
      return ok.error();
    }
    return b;
  }

  /// The binding of `queue`, declared on first use. Caller holds bindings_mutex.
  expected<consumer_binding*> queue_binding_locked(const std::string& queue) {
    if (auto i = task_bindings.find(queue); i != task_bindings.end()) {
      return i->second.get();
    }
    auto subject = names.task(queue);
    if (!subject) {
      return subject.error();
    }
    auto consumer = names.queue_consumer(queue);
    if (!consumer) {
      return consumer.error();
    }
    auto b = make_binding("queue '" + queue + "'", names.task_stream(), *consumer, *subject);
    if (!b) {
      return b.error();
    }
    auto* raw = b->get();
    task_bindings.emplace(queue, std::move(*b));
    return raw;
  }

  expected<void> declare_all() {
    if (cfg.declare_streams) {
      if (auto ok = declare_stream(names.task_stream(), names.all_tasks()); !ok) {
        return ok;
      }
      if (auto ok = declare_stream(names.event_stream(), names.all_events()); !ok) {
        return ok;
      }
      if (auto ok = declare_revoked_stream(); !ok) {
        return ok;
      }
    }
    std::lock_guard<std::mutex> guard{bindings_mutex};
    if (cfg.all_task_queues) {
      auto b = make_binding("every queue", names.task_stream(), names.all_queues_consumer(), names.all_tasks());
      if (!b) {
        return b.error();
      }
      all_binding = std::move(*b);
    }
    for (const auto& q : cfg.task_queues) {
      if (auto b = queue_binding_locked(q); !b) {
        return b.error();
      }
    }
    if (cfg.consume_events) {
      if (auto ok = ensure_event_binding_locked(); !ok) {
        return ok;
      }
      // A dispatcher declares the lost stream before any task of its
      // partition is published, so no advisory fires before it is kept.
      if (cfg.declare_streams) {
        if (auto ok = declare_lost_stream(); !ok) {
          return ok;
        }
      }
      if (auto ok = ensure_lost_binding_locked(); !ok) {
        return ok;
      }
    }
    return {};
  }

  expected<void> ensure_event_binding_locked() {
    if (event_binding) {
      return {};
    }
    auto consumer = names.event_consumer(cfg.partition);
    if (!consumer) {
      return consumer.error();
    }
    auto b = make_binding("events of partition " + std::to_string(cfg.partition), names.event_stream(), *consumer,
                          event_subject);
    if (!b) {
      return b.error();
    }
    event_binding = std::move(*b);
    return {};
  }

  // --- publishing --------------------------------------------------------------

  expected<publisher*> acquire_publisher() {
    std::lock_guard<std::mutex> guard{publishers_mutex};
    if (!idle_publishers.empty()) {
      auto* p = idle_publishers.back();
      idle_publishers.pop_back();
      return p;
    }
    auto p = std::make_unique<publisher>();
    jsOptions jo = api_options();
    jo.PublishAsync.MaxPending = cfg.max_pending_publishes;
    // Waiting for room under MaxPending counts against the same bound as
    // waiting for PubAcks: past it the broker is not keeping up.
    jo.PublishAsync.StallWait = cfg.publish_timeout.count();
    jo.PublishAsync.ErrHandler = on_publish_error;
    jo.PublishAsync.ErrHandlerClosure = p.get();
    jsCtx* ctx = nullptr;
    if (auto s = natsConnection_JetStream(&ctx, conn.get(), &jo); s != NATS_OK) {
      return broker_error("cannot open a JetStream publishing context", s);
    }
    p->ctx.reset(ctx);
    publishers.push_back(std::move(p));
    return publishers.back().get();
  }

  void release_publisher(publisher* p) {
    std::lock_guard<std::mutex> guard{publishers_mutex};
    idle_publishers.push_back(p);
  }

  /// Publishes `items` to `subject` asynchronously and waits for every
  /// PubAck, or fails with broker_unavailable. `what` names the messages in
  /// errors ("task messages for queue 'q'").
  expected<void> publish(const std::string& subject, const std::vector<outgoing>& items, const std::string& what) {
    if (items.empty()) {
      return {};
    }
    auto leased = acquire_publisher();
    if (!leased) {
      return leased.error();
    }
    auto* p = *leased;
    struct publisher_lease {
      impl* self;
      publisher* p;
      ~publisher_lease() { self->release_publisher(p); }
    } lease{this, p};
    p->reset();
    auto deadline = clock::now() + cfg.publish_timeout;

    std::optional<error> failed;
    std::size_t sent = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    for (const auto& item : items) {
      if (item.bytes->size() > static_cast<std::size_t>(INT_MAX)) {
        failed = error{errc::payload_too_large, what + ": a message of " + std::to_string(item.bytes->size()) +
                                                    " bytes is beyond what NATS can carry"};
        break;
      }
      // The broker drops a message whose id it stored within the dedup
      // window: re-publishing after a crash or a failed call is safe.
      po.MsgId = item.id != nullptr ? item.id->c_str() : nullptr;
      auto s = publish_one_async(p->ctx.get(), subject, *item.bytes, cfg.signer.get(), item.pack_header,
                                 item.pack_count, &po);
      if (s != NATS_OK) {
        auto id = item.id != nullptr ? " (message id " + *item.id + ")" : std::string{};
        failed = broker_error("cannot publish " + what + id + " to " + subject, s);
        break;
      }
      ++sent;
    }
    auto remaining = [&] {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
      return std::max<std::int64_t>(1, left);
    };
    // No natsConnection_Flush here: the connection sends at once (SendAsap,
    // see connect), so the messages are on the socket already, and a flush
    // would only add a PING round trip before the PubAcks that the wait
    // below needs anyway.
    // Wait even after a failure: the context must be empty before it is
    // reused, and a PubAck that comes in time still counts.
    jsPubOptions co;
    jsPubOptions_Init(&co);
    co.MaxWait = remaining();
    auto s = js_PublishAsyncComplete(p->ctx.get(), &co);
    if (s != NATS_OK) {
      // Take the unconfirmed messages back so the context is clean; a PubAck
      // arriving for one of them later is ignored by nats.c. The caller still
      // holds them all and publishes again (dedup makes that safe).
      natsMsgList pending{nullptr, 0};
      int unconfirmed = 0;
      if (js_PublishAsyncGetPendingList(&pending, p->ctx.get()) == NATS_OK) {
        unconfirmed = pending.Count;
        natsMsgList_Destroy(&pending);
      }
      if (!failed) {
        failed = error{errc::broker_unavailable,
                       mask(std::to_string(unconfirmed) + " of " + std::to_string(sent) + " " + what + " on " +
                            subject + " not confirmed by JetStream within " +
                            std::to_string(cfg.publish_timeout.count()) + " ms (" + status_text(s) +
                            "); nothing is lost, the caller publishes them again")};
      }
    }
    if (failed) {
      return *failed;
    }
    std::lock_guard<std::mutex> guard{p->mutex};
    if (p->failures > 0) {
      return error{errc::broker_unavailable,
                   mask(std::to_string(p->failures) + " of " + std::to_string(sent) + " " + what + " on " + subject +
                        " refused by JetStream: " + p->first_failure)};
    }
    return {};
  }

  // --- fetching ---------------------------------------------------------------

  expected<natsSubscription*> borrow(consumer_binding& b) {
    {
      std::lock_guard<std::mutex> guard{b.mutex};
      if (!b.idle.empty()) {
        auto* sub = b.idle.back();
        b.idle.pop_back();
        return sub;
      }
    }
    if (auto down = unless_connected("subscribe to consumer " + b.consumer)) {
      // Binding is a JetStream request; made now it would wait out
      // api_timeout in the reconnect buffer, far beyond the fetch's wait.
      return *down;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    // Bind to the consumer declared at connect; never create one here, since
    // a consumer created by a subscription disappears with it.
    so.Stream = b.stream.c_str();
    so.Consumer = b.consumer.c_str();
    auto jo = api_options();
    natsSubscription* sub = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_PullSubscribe(&sub, js.get(), b.filter.c_str(), b.consumer.c_str(), &jo, &so, &jerr);
    if (s != NATS_OK) {
      return api_error("cannot subscribe to consumer " + b.consumer + " for " + b.label, s, jerr);
    }
    std::lock_guard<std::mutex> guard{b.mutex};
    b.owned.emplace_back(sub);
    return sub;
  }

  void give_back(consumer_binding& b, natsSubscription* sub) {
    std::lock_guard<std::mutex> guard{b.mutex};
    b.idle.push_back(sub);
  }

  /// Turns fetched messages into deliveries whose tokens keep each natsMsg
  /// alive until it is acked.
  void adopt(natsMsgList& list, std::vector<delivery>& out) {
    std::lock_guard<std::mutex> guard{inflight_mutex};
    for (int i = 0; i < list.Count; ++i) {
      message_ptr m{list.Msgs[i]};
      list.Msgs[i] = nullptr;
      if (!m) {
        continue;
      }
      std::int32_t count = 1;
      jsMsgMetaData* raw = nullptr;
      if (natsMsg_GetMetaData(&raw, m.get()) == NATS_OK) {
        metadata_ptr meta{raw};
        count = static_cast<std::int32_t>(std::min<std::uint64_t>(meta->NumDelivered, INT32_MAX));
      }
      const char* data = natsMsg_GetData(m.get());
      auto size = static_cast<std::size_t>(natsMsg_GetDataLength(m.get()));
      auto entry = std::make_shared<inflight_message>();
      // The signature covers the whole message, a pack included: a refused
      // pack goes on whole, as one refused delivery, unread.
      auto refused = refusal_of(cfg.signer.get(), m.get());
      std::optional<std::vector<std::string>> events;
      if (!refused) {
        if (auto unpacked = unpack_message(m.get())) {
          // A pack that does not parse goes on whole, as one refused
          // delivery: the dispatcher (or, for tasks, the worker)
          // dead-letters it with the reason.
          if (*unpacked) {
            events = std::move(**unpacked);
          } else {
            refused = unpacked->error();
          }
        }
      }
      entry->msg = std::move(m);
      if (events && !events->empty()) {
        entry->unacked = events->size();
        for (auto& e : *events) {
          auto token = next_token++;
          out.push_back(delivery{std::move(e), token, count});
          inflight.emplace(token, entry);
        }
      } else {
        auto token = next_token++;
        out.push_back(delivery{std::string{data, size}, token, count, std::move(refused)});
        inflight.emplace(token, std::move(entry));
      }
    }
  }

  /// Moves up to `batch` tasks left over from earlier packs into `out`;
  /// whether there were any.
  bool take_ready(consumer_binding& b, int batch, std::vector<delivery>& out) {
    std::lock_guard<std::mutex> guard{b.mutex};
    auto before = out.size();
    while (!b.ready.empty() && out.size() - before < static_cast<std::size_t>(batch)) {
      out.push_back(std::move(b.ready.front()));
      b.ready.pop_front();
    }
    return out.size() > before;
  }

  /// After a task fetch appended `out[taken..)`: keeps the first `batch` of
  /// them in `out`, moves the rest to `b.ready`, and updates how many tasks
  /// a message is expected to hold. The estimate follows larger packs at
  /// once and smaller ones by halving, so that a queue of single tasks is
  /// still fetched in large requests while one switch from single tasks to
  /// full packs cannot make a request bring `batch` packs: a process holds
  /// few tasks beyond what its handlers asked for, and their AckWait does
  /// not run out while they wait.
  void keep_batch(consumer_binding& b, std::size_t taken, std::size_t messages, int batch,
                  std::vector<delivery>& out) {
    std::lock_guard<std::mutex> guard{b.mutex};
    auto got = out.size() - taken;
    if (messages > 0) {
      auto seen = std::max<std::size_t>(1, (got + messages - 1) / messages);
      b.envelopes_per_message = std::max(seen, b.envelopes_per_message / 2);
    }
    auto keep = taken + static_cast<std::size_t>(batch);
    for (auto i = keep; i < out.size(); ++i) {
      b.ready.push_back(std::move(out[i]));
    }
    if (out.size() > keep) {
      out.resize(keep);
    }
  }

  /// One pull request on `b`. Returns the status: OK (messages appended),
  /// no message (timeout or 404), or a broker error (remembered). With
  /// `tasks`, at most `batch` deliveries are appended: tasks left over from
  /// a pack go first, the pull request asks for about `batch` tasks' worth
  /// of messages, and what a pack brings beyond `batch` waits in the binding.
  natsStatus fetch_once(consumer_binding& b, int batch, milliseconds wait, bool no_wait, std::vector<delivery>& out,
                        bool tasks = false) {
    if (tasks) {
      if (take_ready(b, batch, out)) {
        return NATS_OK;
      }
      std::size_t per_message = 1;
      {
        std::lock_guard<std::mutex> guard{b.mutex};
        if (b.envelopes_per_message == 0) {
          // First fetch: assume full packs rather than grab `batch` of them.
          b.envelopes_per_message = static_cast<std::size_t>(std::max(1, cfg.task_pack_max));
        }
        per_message = b.envelopes_per_message;
      }
      auto wanted = (static_cast<std::size_t>(batch) + per_message - 1) / per_message;
      auto messages = static_cast<int>(std::max<std::size_t>(1, wanted));
      auto taken = out.size();
      auto s = fetch_messages(b, messages, wait, no_wait, out);
      keep_batch(b, taken, static_cast<std::size_t>(s.second), batch, out);
      return s.first;
    }
    return fetch_messages(b, batch, wait, no_wait, out).first;
  }

  /// One pull request for up to `batch` messages on `b`, every envelope of
  /// them appended to `out`. Returns the status and the messages received.
  std::pair<natsStatus, int> fetch_messages(consumer_binding& b, int batch, milliseconds wait, bool no_wait,
                                            std::vector<delivery>& out) {
    auto sub = borrow(b);
    if (!sub) {
      remember(sub.error());
      return {NATS_ERR, 0};
    }
    // nats.c 3.4.1 overruns the message array of a fetch that finds more
    // than half its batch already waiting in the subscription (js.c _fetch
    // lowers req->Batch by what it collected, then loops until the count
    // equals the lowered value), which corrupted the heap of busy workers.
    // Such leftovers are messages a previous fetch's request brought after
    // that fetch timed out. Take them one at a time first: a batch of one
    // cannot overrun.
    int received = 0;
    int waiting = 0;
    int waiting_bytes = 0;
    while (received < batch &&
           natsSubscription_GetPending(*sub, &waiting, &waiting_bytes) == NATS_OK && waiting > 0) {
      jsFetchRequest one;
      jsFetchRequest_Init(&one);
      one.Batch = 1;
      one.NoWait = true;
      one.Expires = to_nanos(no_wait_expiry);
      message_list leftover;
      if (natsSubscription_FetchRequest(&leftover.list, *sub, &one) != NATS_OK) {
        break;
      }
      received += leftover.list.Count;
      adopt(leftover.list, out);
    }
    if (received > 0) {
      give_back(b, *sub);
      return {NATS_OK, received};
    }
    message_list fetched;
    natsStatus s = NATS_OK;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (no_wait) {
      jsFetchRequest req;
      jsFetchRequest_Init(&req);
      req.Batch = batch;
      req.NoWait = true;
      req.Expires = to_nanos(no_wait_expiry);
      s = natsSubscription_FetchRequest(&fetched.list, *sub, &req);
    } else {
      s = natsSubscription_Fetch(&fetched.list, *sub, batch, std::max<std::int64_t>(1, wait.count()), &jerr);
    }
    give_back(b, *sub);
    if (s == NATS_OK) {
      received = fetched.list.Count;
      adopt(fetched.list, out);
    } else if (!is_no_message(s)) {
      remember(broker_error("cannot fetch from consumer " + b.consumer + " for " + b.label, s, jerr));
    }
    return {s, received};
  }

  /// Waits up to `d` or until close(). Pacing after an error, not a
  /// synchronization: the condition is `closed`.
  void pause(milliseconds d) {
    std::unique_lock<std::mutex> lock{close_mutex};
    close_cv.wait_for(lock, d, [this] { return closed.load(); });
  }

  std::vector<consumer_binding*> resolve(const std::vector<std::string>& queues) {
    std::vector<consumer_binding*> out;
    std::lock_guard<std::mutex> guard{bindings_mutex};
    if (queues.empty()) {
      if (all_binding) {
        out.push_back(all_binding.get());
        return out;
      }
      for (auto& [name, b] : task_bindings) {
        out.push_back(b.get());
      }
      return out;
    }
    for (const auto& q : queues) {
      auto b = queue_binding_locked(q);
      if (b) {
        out.push_back(*b);
      } else {
        remember(b.error());
      }
    }
    return out;
  }

  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max, milliseconds wait) {
    std::vector<delivery> out;
    if (closed || max == 0) {
      return out;
    }
    auto deadline = clock::now() + wait;
    auto bindings = resolve(queues);
    if (bindings.empty()) {
      remember(error{errc::invalid_config, "fetch_tasks: no task queue to fetch from (none named, none configured, "
                                           "all_task_queues off)"});
      pause(wait);
      return out;
    }
    auto batch = static_cast<int>(std::min<std::size_t>({max, static_cast<std::size_t>(cfg.fetch_batch),
                                                         static_cast<std::size_t>(INT_MAX)}));
    // Rotate the starting queue so that a busy first queue does not starve
    // the others.
    auto start = rotation.fetch_add(1);
    auto nth = [&](std::size_t i) -> consumer_binding& { return *bindings[(start + i) % bindings.size()]; };
    if (bindings.size() > 1) {
      for (std::size_t i = 0; i < bindings.size() && out.size() < max; ++i) {
        fetch_once(nth(i), batch - static_cast<int>(out.size()), milliseconds{0}, true, out, true);
      }
      if (!out.empty()) {
        return out;
      }
    }
    // Wait in slices: close() must be seen, and with several queues each
    // gets its turn to wait.
    for (std::size_t i = 0; !closed; ++i) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
      if (left <= milliseconds{0}) {
        break;
      }
      auto slice = std::min(left, max_fetch_slice);
      if (bindings.size() > 1) {
        slice = std::min(slice, std::max(milliseconds{10}, wait / static_cast<int>(bindings.size())));
      }
      auto before = clock::now();
      auto s = fetch_once(nth(i), batch, slice, false, out, true);
      if (!out.empty()) {
        break;
      }
      if (s != NATS_OK && !is_no_message(s) && clock::now() - before < slice) {
        // Failed at once (closed connection, bad subscription): pace.
        pause(slice);
      }
    }
    return out;
  }

  void ack(const delivery& d) {
    std::shared_ptr<inflight_message> done;
    {
      std::lock_guard<std::mutex> guard{inflight_mutex};
      auto i = inflight.find(d.token);
      if (i == inflight.end()) {
        return;
      }
      auto entry = std::move(i->second);
      inflight.erase(i);
      if (unacked_events.erase(d.token) != 0 && unacked_events.size() < cfg.max_events_in_flight) {
        events_acked.notify_one();  // the event loop may fetch again
      }
      // A pack is acked with its last event: until then JetStream may
      // deliver it again, and the dispatcher ignores the events it committed.
      if (--entry->unacked != 0) {
        return;
      }
      done = std::move(entry);
    }
    auto& m = done->msg;
    // Does not wait for the server: the ack rides the connection's buffered
    // writes. If it is lost, JetStream delivers once more after AckWait.
    if (auto s = natsMsg_Ack(m.get(), nullptr); s != NATS_OK) {
      remember(broker_error("cannot ack a delivery (it will be delivered again after ack_wait)", s));
    }
  }

  void in_progress(const delivery& d) {
    // Under the lock: the natsMsg must outlive the call, and an ack may
    // take it out of the map at any time. The call only buffers a publish.
    std::lock_guard<std::mutex> guard{inflight_mutex};
    auto i = inflight.find(d.token);
    if (i == inflight.end()) {
      return;
    }
    if (auto s = natsMsg_InProgress(i->second->msg.get(), nullptr); s != NATS_OK) {
      remember(broker_error("cannot mark a delivery in progress (it may be delivered again after ack_wait)", s));
    }
  }

  // --- events --------------------------------------------------------------------

  /// Backpressure: blocks while the dispatcher holds `max_events_in_flight`
  /// unacked events; false once the transport closes.
  bool wait_for_event_room() {
    std::unique_lock<std::mutex> lock{inflight_mutex};
    events_acked.wait(lock, [this] { return closed.load() || unacked_events.size() < cfg.max_events_in_flight; });
    return !closed;
  }

  /// A new event sink owes nothing for its predecessor's deliveries.
  void forget_unacked_events() {
    std::lock_guard<std::mutex> guard{inflight_mutex};
    unacked_events.clear();
    events_acked.notify_all();
  }

  void event_loop() {
    while (!closed) {
      consumer_binding* b = nullptr;
      {
        std::lock_guard<std::mutex> guard{bindings_mutex};
        if (auto ok = ensure_event_binding_locked(); !ok) {
          remember(ok.error());
        }
        b = event_binding.get();
      }
      if (b == nullptr) {
        pause(event_retry_pause);
        continue;
      }
      if (!wait_for_event_room()) {
        break;
      }
      std::vector<delivery> batch;
      auto before = clock::now();
      auto s = fetch_once(*b, cfg.fetch_batch, max_fetch_slice, false, batch);
      if (!batch.empty()) {
        {
          std::lock_guard<std::mutex> guard{inflight_mutex};
          for (const auto& d : batch) {
            unacked_events.insert(d.token);
          }
        }
        std::function<void(std::vector<delivery>)> deliver;
        {
          std::lock_guard<std::mutex> guard{sink_mutex};
          deliver = sink;
        }
        if (deliver) {
          deliver(std::move(batch));
        }
      } else if (s != NATS_OK && !is_no_message(s) && clock::now() - before < max_fetch_slice) {
        pause(event_retry_pause);
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> guard{close_mutex};
      closed = true;
    }
    close_cv.notify_all();
    {
      std::lock_guard<std::mutex> guard{inflight_mutex};
      events_acked.notify_all();
    }
    std::thread t;
    {
      std::lock_guard<std::mutex> guard{sink_mutex};
      t = std::move(event_thread);
    }
    if (t.joinable()) {
      if (t.get_id() == std::this_thread::get_id()) {
        // close() from inside the sink: the loop ends after this batch.
        t.detach();
      } else {
        t.join();
      }
    }
    std::thread lost;
    {
      std::lock_guard<std::mutex> guard{lost_mutex};
      lost = std::move(lost_thread);
    }
    if (lost.joinable()) {
      if (lost.get_id() == std::this_thread::get_id()) {
        lost.detach();  // close() from inside the lost-task sink
      } else {
        lost.join();
      }
    }
  }

  // --- exhausted tasks --------------------------------------------------------

  static void on_submission(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    message_ptr owned{msg};
    auto* self = static_cast<impl*>(closure);
    const char* reply = natsMsg_GetReply(msg);
    if (reply == nullptr || *reply == '\0') {
      // Nobody could be told the outcome; a client always sends a request.
      self->remember(error{errc::malformed_envelope, "submission without a reply subject on " +
                                                         std::string{natsMsg_GetSubject(msg)}});
      return;
    }
    if (auto refused = refusal_of(self->cfg.signer.get(), msg)) {
      // Unsigned or badly signed: answered here with the reason, in the
      // dispatcher's error shape, and never handed to the dispatcher.
      value::map err{{"type", std::string{to_string(refused->code())}}, {"message", refused->message()}};
      auto answer = pack_to_string(value(value::map{{"error", std::move(err)}}));
      natsConnection_Publish(self->conn.get(), reply, answer.data(), static_cast<int>(answer.size()));
      return;
    }
    std::lock_guard<std::mutex> guard{self->submit_mutex};
    auto token = self->next_submit_token++;
    self->submit_replies.emplace(token, reply);
    if (self->submit_sink) {
      std::string bytes(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
      self->submit_sink(delivery{std::move(bytes), token, 1});
    }
  }

  static void on_reconnected(natsConnection*, void* closure) {
    auto* self = static_cast<impl*>(closure);
    std::vector<std::function<void()>> listeners;
    {
      std::lock_guard<std::mutex> guard{self->reconnect_mutex};
      listeners = self->reconnect_listeners;
    }
    for (auto& l : listeners) {
      l();
    }
  }

  static void on_control(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    message_ptr owned{msg};
    auto* w = static_cast<control_watch*>(closure);
    std::uint64_t token = 0;
    const char* reply = natsMsg_GetReply(msg);
    if (reply != nullptr && *reply != '\0') {
      std::lock_guard<std::mutex> guard{w->self->control_mutex};
      token = w->self->next_control_token++;
      w->self->control_replies.emplace(token, reply);
      // A request whose answer never comes (its dispatcher died) must not
      // pin memory forever; its client has long timed out.
      while (w->self->control_replies.size() > max_open_control_requests) {
        w->self->control_replies.erase(w->self->control_replies.begin());
      }
    }
    w->sink(delivery{std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))), token,
                     1});
  }

  /// Subscribes `receiver` to `subject`, in `queue_group` unless it is
  /// empty, and waits until the server knows the subscription.
  expected<void> subscribe_control(const std::string& subject, const std::string& queue_group,
                                   std::function<void(delivery)> receiver) {
    auto w = std::make_unique<control_watch>();
    w->self = this;
    w->sink = std::move(receiver);
    natsSubscription* sub = nullptr;
    auto s = queue_group.empty()
                 ? natsConnection_Subscribe(&sub, conn.get(), subject.c_str(), &impl::on_control, w.get())
                 : natsConnection_QueueSubscribe(&sub, conn.get(), subject.c_str(), queue_group.c_str(),
                                                 &impl::on_control, w.get());
    if (s != NATS_OK) {
      return broker_error("cannot subscribe to " + subject, s);
    }
    w->sub.reset(sub);
    {
      std::lock_guard<std::mutex> guard{control_mutex};
      control_watches.push_back(std::move(w));
    }
    if (auto f = natsConnection_FlushTimeout(conn.get(), cfg.api_timeout.count()); f != NATS_OK) {
      return broker_error("cannot confirm the subscription to " + subject, f);
    }
    return {};
  }

  /// Publishes `reply` on the reply subject remembered under `token` in
  /// `replies` (guarded by `mutex`) and forgets it. Unknown tokens (answered
  /// already, or notices without a reply subject) are ignored; a failure is
  /// remembered for `last_error`.
  template <class Replies>
  void answer(std::mutex& mutex, Replies& replies, std::uint64_t token, const std::string& reply, const char* what) {
    std::string subject;
    {
      std::lock_guard<std::mutex> guard{mutex};
      auto i = replies.find(token);
      if (i == replies.end()) {
        return;
      }
      subject = std::move(i->second);
      replies.erase(i);
    }
    if (auto s = natsConnection_Publish(conn.get(), subject.c_str(), reply.data(), static_cast<int>(reply.size()));
        s != NATS_OK) {
      remember(broker_error(std::string{"cannot answer "} + what, s));
    }
  }

  static void on_done(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    message_ptr owned{msg};
    auto* w = static_cast<done_watch*>(closure);
    w->sink(std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
  }

  // --- revocations (kept in the revoked stream) ---------------------------------

  /// `TRELLIS_<NS>_REVOKED` on the `revoked` notice subject: limits
  /// retention, as many notices as a worker remembers, for a week.
  expected<void> declare_revoked_stream() {
    auto name = names.revoked_stream();
    auto subject = names.control(revoked_verb);
    if (!subject) {
      return subject.error();
    }
    const char* subjects[] = {subject->c_str()};
    jsStreamConfig sc;
    init_stream(sc, name, subjects, js_LimitsPolicy);
    sc.Discard = js_DiscardOld;
    sc.MaxMsgs = revocations_kept;
    sc.Duplicates = to_nanos(cfg.dedup_window);
    sc.MaxAge = static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(revocation_max_age).count());
    return add_or_update_stream(sc, name, *subject);
  }

  static void on_revocation(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    message_ptr owned{msg};
    auto* w = static_cast<revocation_watch*>(closure);
    if (auto refused = refusal_of(w->self->cfg.signer.get(), msg)) {
      w->self->remember(error{refused->code(), "revoke notice dropped: " + refused->message()});
    } else {
      w->sink(std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
    }
    // Read, whether used or dropped: watch_revocations waits for this.
    jsMsgMetaData* raw = nullptr;
    if (natsMsg_GetMetaData(&raw, msg) == NATS_OK) {
      metadata_ptr meta{raw};
      std::lock_guard<std::mutex> guard{w->mutex};
      w->read_up_to = std::max(w->read_up_to, meta->Sequence.Stream);
      w->advanced.notify_all();
    }
  }

  // --- lost tasks (MAX_DELIVERIES advisories, kept in the lost stream) --------

  /// `TRELLIS_<NS>_LOST`: limits retention, so every partition's consumer
  /// sees every advisory, for `lost_advisory_max_age`.
  expected<void> declare_lost_stream() {
    auto name = names.lost_stream();
    auto subject = names.task_max_deliveries_advisory();
    const char* subjects[] = {subject.c_str()};
    jsStreamConfig sc;
    init_stream(sc, name, subjects, js_LimitsPolicy);
    sc.MaxAge = static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(lost_advisory_max_age)
                                              .count());
    return add_or_update_stream(sc, name, subject);
  }

  /// Declares `lost-<partition>` on first use. Caller holds bindings_mutex.
  expected<void> ensure_lost_binding_locked() {
    if (lost_binding) {
      return {};
    }
    auto consumer = names.lost_consumer(cfg.partition);
    if (!consumer) {
      return consumer.error();
    }
    auto b = make_binding("lost tasks seen by partition " + std::to_string(cfg.partition), names.lost_stream(),
                          *consumer, names.task_max_deliveries_advisory());
    if (!b) {
      return b.error();
    }
    lost_binding = std::move(*b);
    return {};
  }

  /// The lost-task thread: one advisory at a time (they are rare, and a
  /// batch of one cannot overrun nats.c's fetch, see fetch_once).
  void lost_loop() {
    while (!closed) {
      consumer_binding* b = nullptr;
      {
        std::lock_guard<std::mutex> guard{bindings_mutex};
        if (auto ok = ensure_lost_binding_locked(); !ok) {
          remember(ok.error());
        }
        b = lost_binding.get();
      }
      if (b == nullptr) {
        pause(event_retry_pause);
        continue;
      }
      auto sub = borrow(*b);
      if (!sub) {
        remember(sub.error());
        pause(event_retry_pause);
        continue;
      }
      message_list fetched;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      auto before = clock::now();
      auto s = natsSubscription_Fetch(&fetched.list, *sub, 1, max_fetch_slice.count(), &jerr);
      give_back(*b, *sub);
      if (s != NATS_OK) {
        if (!is_no_message(s)) {
          remember(broker_error("cannot fetch from consumer " + b->consumer + " for " + b->label, s, jerr));
          if (clock::now() - before < max_fetch_slice) {
            pause(event_retry_pause);
          }
        }
        continue;
      }
      for (int i = 0; i < fetched.list.Count; ++i) {
        message_ptr m{fetched.list.Msgs[i]};
        fetched.list.Msgs[i] = nullptr;
        if (m) {
          handle_lost_advisory(std::move(m));
        }
      }
    }
  }

  /// Acks an advisory that will never lead anywhere, saying why.
  void skip_advisory(natsMsg* msg, error why) {
    remember(std::move(why));
    if (auto s = natsMsg_Ack(msg, nullptr); s != NATS_OK) {
      remember(broker_error("cannot ack a skipped MAX_DELIVERIES advisory", s));
    }
  }

  void handle_lost_advisory(message_ptr msg) {
    std::uint64_t key = 0;
    jsMsgMetaData* raw_meta = nullptr;
    if (natsMsg_GetMetaData(&raw_meta, msg.get()) == NATS_OK) {
      metadata_ptr meta{raw_meta};
      key = meta->Sequence.Stream;
    }
    auto doc = nlohmann::json::parse(natsMsg_GetData(msg.get()),
                                     natsMsg_GetData(msg.get()) + natsMsg_GetDataLength(msg.get()), nullptr, false);
    if (key == 0 || doc.is_discarded() || !doc.is_object() || !doc.contains("stream_seq") ||
        !doc["stream_seq"].is_number_unsigned()) {
      skip_advisory(msg.get(), error{errc::malformed_envelope, "unreadable MAX_DELIVERIES advisory on " +
                                                                   std::string{natsMsg_GetSubject(msg.get())} +
                                                                   " in " + names.lost_stream() + "; skipped"});
      return;
    }
    exhausted_task t;
    t.token = key;
    t.stream_sequence = doc["stream_seq"].get<std::uint64_t>();
    t.deliveries = doc.value("deliveries", std::int32_t{0});
    auto jo = api_options();
    natsMsg* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_GetMsg(&raw, js.get(), names.task_stream().c_str(), t.stream_sequence, &jo, &jerr);
    message_ptr stored{raw};
    if (s != NATS_OK && jerr == JSNoMessageFoundErr) {
      // Settled before (by this partition's owner, whose ack of the advisory
      // was lost), or acked late by its worker: nothing left to decide.
      if (auto a = natsMsg_Ack(msg.get(), nullptr); a != NATS_OK) {
        remember(broker_error("cannot ack the advisory of gone task " + std::to_string(t.stream_sequence), a));
      }
      return;
    }
    if (s != NATS_OK) {
      // Left unacked: the advisory comes again after ack_wait.
      remember(broker_error("cannot read exhausted task " + std::to_string(t.stream_sequence) + " of " +
                                names.task_stream() + " (its advisory comes again after ack_wait)",
                            s, jerr));
      return;
    }
    std::string subject = natsMsg_GetSubject(stored.get());
    auto prefix = names.all_tasks();
    prefix.pop_back();  // "trellis.<ns>.task."
    t.queue = subject.compare(0, prefix.size(), prefix) == 0 ? subject.substr(prefix.size()) : subject;
    const char* data = natsMsg_GetData(stored.get());
    auto size = static_cast<std::size_t>(natsMsg_GetDataLength(stored.get()));
    // Every task of an exhausted pack was lost with it; one that does not
    // parse goes on whole, for the dispatcher to dead-letter as unreadable.
    std::vector<std::string> tasks;
    if (auto unpacked = unpack_message(stored.get()); unpacked && *unpacked) {
      tasks = std::move(**unpacked);
    }
    if (tasks.empty()) {
      tasks.emplace_back(data, size);
    }
    std::function<void(exhausted_task)> deliver;
    {
      std::lock_guard<std::mutex> guard{lost_mutex};
      deliver = exhausted_sink;
      lost_unacked[key] = lost_advisory{std::move(msg), t.stream_sequence};
    }
    if (!deliver) {
      return;
    }
    for (auto& bytes : tasks) {
      auto one = t;
      one.bytes = std::move(bytes);
      deliver(std::move(one));
    }
  }

  /// Takes the held advisory `token` out, to ack it; none if unknown.
  std::optional<lost_advisory> take_lost(std::uint64_t token) {
    std::lock_guard<std::mutex> guard{lost_mutex};
    auto i = lost_unacked.find(token);
    if (i == lost_unacked.end()) {
      return std::nullopt;
    }
    auto held = std::move(i->second);
    lost_unacked.erase(i);
    return held;
  }

  void ack_lost(lost_advisory& held) {
    if (auto s = natsMsg_Ack(held.msg.get(), nullptr); s != NATS_OK) {
      remember(broker_error("cannot ack the advisory of exhausted task " + std::to_string(held.task_sequence) +
                                " (it comes again after ack_wait)",
                            s));
    }
  }
};

// ---------------------------------------------------------------------------

std::string nats_config::redacted() const {
  std::ostringstream out;
  out << "urls=" << join_urls(urls) << " ns=" << ns << " partition=" << partition << " client_name=" << client_name;
  out << " task_queues=[";
  for (std::size_t i = 0; i < task_queues.size(); ++i) {
    out << (i == 0 ? "" : ",") << task_queues[i];
  }
  out << "] all_task_queues=" << (all_task_queues ? "true" : "false")
      << " consume_events=" << (consume_events ? "true" : "false");
  if (!user.empty()) {
    out << " user=" << user << " password=***";
  }
  if (!token.empty()) {
    out << " token=***";
  }
  if (!creds_file.empty()) {
    out << " creds_file=" << creds_file;
  }
  if (!tls_ca_file.empty()) {
    out << " tls_ca_file=" << tls_ca_file;
  }
  if (!tls_cert_file.empty()) {
    out << " tls_cert_file=" << tls_cert_file << " tls_key_file=" << tls_key_file;
  }
  out << " signing=" << (signer ? "hmac-sha256" : "off");
  out << " ack_wait=" << ack_wait.count() << "ms max_deliver=" << max_deliver << " max_ack_pending=" << max_ack_pending
      << " max_events_in_flight=" << max_events_in_flight << " max_pending_publishes=" << max_pending_publishes
      << " fetch_batch=" << fetch_batch
      << " publish_timeout=" << publish_timeout.count() << "ms dedup_window=" << dedup_window.count()
      << "ms connect_timeout=" << connect_timeout.count() << "ms api_timeout=" << api_timeout.count()
      << "ms reconnect_wait=" << reconnect_wait.count() << "ms reconnect_jitter=" << reconnect_jitter.count()
      << "ms max_reconnect=" << max_reconnect << " reconnect_buffer_bytes=" << reconnect_buffer_bytes
      << " replicas=" << replicas << " storage=" << (file_storage ? "file" : "memory");
  return out.str();
}

expected<void> validate(const nats_config& cfg) {
  auto bad = [](const std::string& field, const std::string& why) {
    return error{errc::invalid_config, "nats config: " + field + " " + why};
  };
  if (cfg.urls.empty()) {
    return bad("urls", "is empty; name at least one server, e.g. nats://127.0.0.1:4222");
  }
  for (const auto& u : cfg.urls) {
    if (u.empty()) {
      return bad("urls", "contains an empty url");
    }
  }
  auto names = subject_space::make(cfg.ns);
  if (!names) {
    return bad("ns", "is invalid: " + names.error().message());
  }
  if (cfg.partition < 0) {
    return bad("partition", "is " + std::to_string(cfg.partition) + "; it must be 0 or more");
  }
  for (const auto& q : cfg.task_queues) {
    if (auto ok = validate_token("queue", q); !ok) {
      return bad("task_queues", "is invalid: " + ok.error().message());
    }
  }
  if (cfg.all_task_queues && !cfg.task_queues.empty()) {
    return bad("all_task_queues", "is set together with task_queues; JetStream forbids overlapping consumers on a "
                                  "work-queue stream, so choose one");
  }
  if (!cfg.password.empty() && cfg.user.empty()) {
    return bad("password", "is set without a user");
  }
  if (!cfg.token.empty() && !cfg.user.empty()) {
    return bad("token", "is set together with user; a server takes one or the other");
  }
  if (!cfg.tls_key_file.empty() && cfg.tls_cert_file.empty()) {
    return bad("tls_key_file", "is set without tls_cert_file");
  }
  if (!cfg.tls_cert_file.empty() && cfg.tls_key_file.empty()) {
    return bad("tls_cert_file", "is set without tls_key_file");
  }
  auto positive = [&](const char* field, long long value) -> expected<void> {
    if (value <= 0) {
      return bad(field, "is " + std::to_string(value) + "; it must be positive");
    }
    return {};
  };
  for (auto check : {positive("ack_wait", cfg.ack_wait.count()), positive("max_deliver", cfg.max_deliver),
                     positive("max_ack_pending", cfg.max_ack_pending),
                     positive("max_events_in_flight", static_cast<long long>(std::min<std::size_t>(
                                                          cfg.max_events_in_flight, LLONG_MAX))),
                     positive("max_pending_publishes", cfg.max_pending_publishes),
                     positive("fetch_batch", cfg.fetch_batch), positive("task_pack_max", cfg.task_pack_max),
                     positive("publish_timeout", cfg.publish_timeout.count()),
                     positive("dedup_window", cfg.dedup_window.count()),
                     positive("connect_timeout", cfg.connect_timeout.count()),
                     positive("api_timeout", cfg.api_timeout.count()), positive("replicas", cfg.replicas)}) {
    if (!check) {
      return check;
    }
  }
  if (cfg.reconnect_wait.count() < 0 || cfg.reconnect_jitter.count() < 0) {
    return bad("reconnect_wait/reconnect_jitter", "must not be negative");
  }
  if (cfg.max_reconnect < -1) {
    return bad("max_reconnect", "is " + std::to_string(cfg.max_reconnect) + "; use -1 for forever or 0 and more");
  }
  if (cfg.reconnect_buffer_bytes < 0) {
    return bad("reconnect_buffer_bytes", "must not be negative");
  }
  if (cfg.replicas > 5) {
    return bad("replicas", "is " + std::to_string(cfg.replicas) + "; JetStream allows at most 5");
  }
  return {};
}

expected<std::unique_ptr<nats_transport>> nats_transport::connect(nats_config cfg) {
  if (auto ok = validate(cfg); !ok) {
    return ok.error();
  }
  auto names = subject_space::make(cfg.ns);
  if (!names) {
    return names.error();
  }
  auto event_subject = names->event(cfg.partition);
  if (!event_subject) {
    return event_subject.error();
  }
  auto p = std::make_unique<impl>(std::move(cfg), std::move(*names));
  p->event_subject = std::move(*event_subject);
  if (auto ok = p->connect(); !ok) {
    return ok.error();
  }
  // A JetStream cluster that is busy or electing a leader can answer an API
  // request after api_timeout, or not at all. Declaring is idempotent, so a
  // request that went unanswered is tried again; a refusal is final.
  for (int attempt = 1;; ++attempt) {
    auto ok = p->declare_all();
    if (ok) {
      break;
    }
    if (ok.error().code() != errc::broker_unavailable || attempt == declare_attempts) {
      return ok.error();
    }
    std::this_thread::sleep_for(p->cfg.reconnect_wait);  // pacing; the cluster answering is the condition
  }
  return std::unique_ptr<nats_transport>{new nats_transport{std::move(p)}};
}

nats_transport::nats_transport(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

nats_transport::~nats_transport() = default;

expected<void> nats_transport::publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) {
  auto subject = impl_->names.task(queue);
  if (!subject) {
    return subject.error();
  }
  // outgoing_task::priority is ignored: NATS has no message priority (see
  // the decision record 0008 for per-band subjects, if ever needed).
  // Packs of `per_pack` consecutive tasks (fewer where the bytes would pass
  // max_event_pack_bytes), cut from the front, so that publishing the same
  // list again makes the same packs with the same ids, which the broker's
  // dedup window drops. A republished task goes alone under its own id: a
  // restore publishes a list unlike any first publish (every ready task of
  // every workflow), so a pack of it would carry an id the broker never saw
  // and the copies in it would run a second time.
  auto n = messages.size();
  auto per_pack = std::clamp<std::size_t>(n / min_task_messages_per_call, 1,
                                          static_cast<std::size_t>(std::max(1, impl_->cfg.task_pack_max)));
  std::vector<outgoing> items;
  std::vector<std::string> packs;  // reserved up front, since items point into them
  std::vector<std::string> counts;
  std::vector<std::string> ids;
  auto packs_at_most = per_pack > 1 ? n / 2 + 1 : 0;
  packs.reserve(packs_at_most);
  counts.reserve(packs_at_most);
  ids.reserve(packs_at_most);
  items.reserve(n);
  for (std::size_t first = 0; first < n;) {
    auto last = first + 1;
    std::size_t bytes = pack_frame_header + messages[first].bytes.size();
    while (!messages[first].republished && last < n && last - first < per_pack && !messages[last].republished &&
           bytes + pack_frame_header + messages[last].bytes.size() <= max_event_pack_bytes) {
      bytes += pack_frame_header + messages[last].bytes.size();
      ++last;
    }
    if (last - first == 1) {
      items.push_back(outgoing{&messages[first].bytes, &messages[first].id});
    } else {
      packs.push_back(pack_frames(first, last, [&](std::size_t i) -> const std::string& { return messages[i].bytes; }));
      counts.push_back(std::to_string(last - first));
      ids.push_back(messages[first].id + "+" + counts.back());
      items.push_back(outgoing{&packs.back(), &ids.back(), &counts.back(), task_pack_header});
    }
    first = last;
  }
  auto ok = impl_->publish(*subject, items, "task messages for queue '" + queue + "'");
  if (ok) {
    messages.clear();
  }
  return ok;
}

std::vector<delivery> nats_transport::fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                                  std::chrono::milliseconds wait) {
  return impl_->fetch_tasks(queues, max, wait);
}

void nats_transport::ack_task(const delivery& d) { impl_->ack(d); }

void nats_transport::touch_task(const delivery& d) { impl_->in_progress(d); }

std::size_t nats_transport::max_message_bytes() const {
  // max_payload counts headers too: the signature and pack headers are far
  // below this room.
  constexpr std::int64_t header_room = 4096;
  auto max = impl_->conn ? natsConnection_GetMaxPayload(impl_->conn.get()) : 0;
  return max > header_room ? static_cast<std::size_t>(max - header_room) : SIZE_MAX;
}

expected<void> nats_transport::publish_events(std::vector<outgoing_event> messages) {
  // Grouped by partition, keeping the order within each: usually one group.
  std::map<int, std::vector<std::string>> by_partition;
  for (auto& m : messages) {
    by_partition[m.partition].push_back(std::move(m.bytes));
  }
  for (const auto& [partition, events] : by_partition) {
    auto subject = impl_->names.event(partition);
    if (!subject) {
      return subject.error();
    }
    std::vector<outgoing> items;
    // Packs of consecutive events up to max_event_pack_bytes (see
    // pack_events); reserved up front, since items point into them.
    std::vector<std::string> packs;
    std::vector<std::string> counts;
    packs.reserve(events.size());
    counts.reserve(events.size());
    for (std::size_t first = 0; first < events.size();) {
      auto last = first;
      std::size_t bytes = 0;
      while (last < events.size() &&
             (last == first || bytes + pack_frame_header + events[last].size() <= max_event_pack_bytes)) {
        bytes += pack_frame_header + events[last].size();
        ++last;
      }
      if (last - first == 1) {
        items.push_back(outgoing{&events[first], nullptr});
      } else {
        packs.push_back(pack_events(events, first, last));
        counts.push_back(std::to_string(last - first));
        items.push_back(outgoing{&packs.back(), nullptr, &counts.back()});
      }
      first = last;
    }
    if (auto ok = impl_->publish(*subject, items, "outcome events for partition " + std::to_string(partition)); !ok) {
      return ok;
    }
  }
  return {};
}

void nats_transport::consume_events(std::function<void(std::vector<delivery>)> sink) {
  impl_->forget_unacked_events();
  std::lock_guard<std::mutex> guard{impl_->sink_mutex};
  impl_->sink = std::move(sink);
  if (!impl_->event_thread.joinable() && !impl_->closed) {
    impl_->event_thread = std::thread{[p = impl_.get()] { p->event_loop(); }};
  }
}

void nats_transport::ack_event(const delivery& d) { impl_->ack(d); }

void nats_transport::close() { impl_->stop(); }

void nats_transport::consume_submissions(std::function<void(delivery)> sink) {
  std::lock_guard<std::mutex> guard{impl_->submit_mutex};
  impl_->submit_sink = std::move(sink);
  if (impl_->submit_sub) {
    return;
  }
  auto subject = impl_->names.submit(impl_->cfg.partition);
  if (!subject) {
    impl_->remember(subject.error());
    return;
  }
  natsSubscription* sub = nullptr;
  // A queue group, so that a second dispatcher of the same partition (a
  // standby) never commits the same submission twice.
  if (auto s = natsConnection_QueueSubscribe(&sub, impl_->conn.get(), subject->c_str(), "dispatchers",
                                             &impl::on_submission, impl_.get());
      s != NATS_OK) {
    impl_->remember(impl_->broker_error("cannot subscribe to " + *subject, s));
    return;
  }
  impl_->submit_sub.reset(sub);
  if (auto s = natsConnection_FlushTimeout(impl_->conn.get(), impl_->cfg.api_timeout.count()); s != NATS_OK) {
    impl_->remember(impl_->broker_error("cannot confirm the subscription to " + *subject, s));
  }
}

void nats_transport::answer_submission(const delivery& d, const std::string& reply) {
  // On failure the client times out and may send the same submission
  // again, which the dispatcher recognizes by its workflow id.
  impl_->answer(impl_->submit_mutex, impl_->submit_replies, d.token, reply, "a submission");
}

expected<std::string> nats_transport::request_submission(const std::string& bytes, std::chrono::milliseconds timeout,
                                                         std::optional<int> partition) {
  auto subject = impl_->names.submit(partition.value_or(impl_->cfg.partition));
  if (!subject) {
    return subject.error();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // A request whose answer does not come is sent again, with the same
  // workflow id, after a wait that doubles: the answer may be lost (the
  // dispatcher committed and died, or restarted) or still to come (a large
  // submission being committed). The dispatcher answers a repeated id with
  // that id and submits nothing, so the first answer to any copy is right.
  auto attempt_wait = first_submission_wait;
  bool answered_none = false;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (answered_none) {
        return error{errc::timeout, "the dispatcher on " + *subject + " did not answer within " +
                                        std::to_string(timeout.count()) + " ms"};
      }
      return error{errc::broker_unavailable, "no dispatcher answered on " + *subject + " within " +
                                                 std::to_string(timeout.count()) + " ms"};
    }
    left = std::min(left, attempt_wait);
    natsMsg* raw = nullptr;
    natsStatus s = NATS_OK;
    if (impl_->cfg.signer) {
      natsMsg* request = nullptr;
      s = natsMsg_Create(&request, subject->c_str(), nullptr, bytes.data(), static_cast<int>(bytes.size()));
      message_ptr owned_request{request};
      if (s == NATS_OK) {
        s = natsMsgHeader_Set(request, signature_header, impl_->cfg.signer->sign(bytes).c_str());
      }
      if (s == NATS_OK) {
        s = natsConnection_RequestMsg(&raw, impl_->conn.get(), request, left.count());
      }
    } else {
      s = natsConnection_Request(&raw, impl_->conn.get(), subject->c_str(), bytes.data(),
                                 static_cast<int>(bytes.size()), left.count());
    }
    message_ptr reply{raw};
    if (s == NATS_OK) {
      return std::string(natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get())));
    }
    if (s == NATS_TIMEOUT) {
      answered_none = true;
      attempt_wait = std::min(attempt_wait * 2, max_submission_wait);
      continue;
    }
    if (s != NATS_NO_RESPONDERS) {
      return impl_->broker_error("cannot send a submission to " + *subject, s);
    }
    // No dispatcher yet (starting or restarting): pace the retry; the
    // dispatcher's subscription is the condition.
    std::this_thread::sleep_for(std::min(left, milliseconds{100}));
  }
}

expected<void> nats_transport::publish_done(const std::string& workflow_id, const std::string& bytes) {
  auto subject = impl_->names.done(workflow_id);
  if (!subject) {
    return subject.error();
  }
  auto s = natsConnection_Publish(impl_->conn.get(), subject->c_str(), bytes.data(), static_cast<int>(bytes.size()));
  if (s != NATS_OK) {
    return impl_->broker_error("cannot publish on " + *subject, s);
  }
  return {};
}

expected<void> nats_transport::watch_done(const std::string& workflow_id, std::function<void(std::string)> sink) {
  auto subject = impl_->names.done(workflow_id);
  if (!subject) {
    return subject.error();
  }
  auto w = std::make_unique<impl::done_watch>();
  w->workflow_id = workflow_id;
  w->sink = std::move(sink);
  natsSubscription* sub = nullptr;
  if (auto s = natsConnection_Subscribe(&sub, impl_->conn.get(), subject->c_str(), &impl::on_done, w.get());
      s != NATS_OK) {
    return impl_->broker_error("cannot subscribe to " + *subject, s);
  }
  w->sub.reset(sub);
  {
    std::lock_guard<std::mutex> guard{impl_->done_mutex};
    impl_->done_watches.push_back(std::move(w));
  }
  if (auto s = natsConnection_FlushTimeout(impl_->conn.get(), impl_->cfg.api_timeout.count()); s != NATS_OK) {
    return impl_->broker_error("cannot confirm the subscription to " + *subject, s);
  }
  return {};
}

void nats_transport::consume_control(std::function<void(delivery)> sink) {
  {
    std::lock_guard<std::mutex> guard{impl_->control_sink_mutex};
    impl_->dispatcher_control_sink = std::move(sink);
  }
  {
    std::lock_guard<std::mutex> guard{impl_->control_mutex};
    if (impl_->dispatcher_control_subscribed) {
      return;
    }
    impl_->dispatcher_control_subscribed = true;
  }
  auto forward = [p = impl_.get()](delivery d) {
    std::function<void(delivery)> deliver;
    {
      std::lock_guard<std::mutex> guard{p->control_sink_mutex};
      deliver = p->dispatcher_control_sink;
    }
    if (deliver) {
      deliver(std::move(d));
    }
  };
  auto partition_subject = impl_->names.partition_control(impl_->cfg.partition);
  if (!partition_subject) {
    impl_->remember(partition_subject.error());
    return;
  }
  // A queue group, as for submissions: one dispatcher of the partition
  // answers (and revokes) once. Inspect goes to every process.
  if (auto ok = impl_->subscribe_control(*partition_subject, "dispatchers", forward); !ok) {
    impl_->remember(ok.error());
  }
  auto inspect_subject = impl_->names.control("inspect");
  if (auto ok = impl_->subscribe_control(*inspect_subject, "", forward); !ok) {
    impl_->remember(ok.error());
  }
}

void nats_transport::answer_control(const delivery& d, const std::string& reply) {
  // On failure the client times out and reports it; a control request
  // changes nothing twice (status reads, revoke of a finished workflow refuses).
  impl_->answer(impl_->control_mutex, impl_->control_replies, d.token, reply, "a control request");
}

expected<void> nats_transport::serve_control(const std::string& verb, std::function<void(delivery)> sink) {
  auto subject = impl_->names.control(verb);
  if (!subject) {
    return subject.error();
  }
  return impl_->subscribe_control(*subject, "", std::move(sink));
}

expected<std::string> nats_transport::request_control(const std::string& verb, int partition,
                                                      const std::string& bytes, std::chrono::milliseconds timeout) {
  auto subject = impl_->names.control(verb, partition);
  if (!subject) {
    return subject.error();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return error{errc::broker_unavailable, "no dispatcher answered on " + *subject + " within " +
                                                 std::to_string(timeout.count()) + " ms"};
    }
    natsMsg* raw = nullptr;
    auto s = natsConnection_Request(&raw, impl_->conn.get(), subject->c_str(), bytes.data(),
                                    static_cast<int>(bytes.size()), left.count());
    message_ptr reply{raw};
    if (s == NATS_OK) {
      return std::string(natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get())));
    }
    if (s == NATS_TIMEOUT) {
      return error{errc::timeout, "the dispatcher on " + *subject + " did not answer within " +
                                      std::to_string(timeout.count()) + " ms"};
    }
    if (s != NATS_NO_RESPONDERS) {
      return impl_->broker_error("cannot send a control request to " + *subject, s);
    }
    // No dispatcher for this partition yet (starting or restarting): pace.
    std::this_thread::sleep_for(std::min(left, milliseconds{100}));
  }
}

expected<std::vector<std::string>> nats_transport::gather_control(const std::string& verb, const std::string& bytes,
                                                                  std::chrono::milliseconds window) {
  auto subject = impl_->names.control(verb);
  if (!subject) {
    return subject.error();
  }
  natsInbox* raw_inbox = nullptr;
  if (auto s = natsInbox_Create(&raw_inbox); s != NATS_OK) {
    return impl_->broker_error("cannot create a reply inbox", s);
  }
  std::unique_ptr<natsInbox, void (*)(natsInbox*)> inbox{raw_inbox, natsInbox_Destroy};
  natsSubscription* raw_sub = nullptr;
  if (auto s = natsConnection_SubscribeSync(&raw_sub, impl_->conn.get(), inbox.get()); s != NATS_OK) {
    return impl_->broker_error("cannot subscribe to a reply inbox", s);
  }
  subscription_ptr sub{raw_sub};
  // Every process answers once; none is waited for by name, so the window
  // is the only bound (a slow or absent process is simply not listed).
  if (auto s = natsConnection_PublishRequest(impl_->conn.get(), subject->c_str(), inbox.get(), bytes.data(),
                                             static_cast<int>(bytes.size()));
      s != NATS_OK) {
    return impl_->broker_error("cannot publish on " + *subject, s);
  }
  natsConnection_FlushTimeout(impl_->conn.get(), std::max<std::int64_t>(1, window.count()));
  std::vector<std::string> replies;
  auto deadline = std::chrono::steady_clock::now() + window;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      break;
    }
    natsMsg* raw = nullptr;
    auto s = natsSubscription_NextMsg(&raw, sub.get(), left.count());
    message_ptr m{raw};
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {
      // No responders: the server says nobody listens on the subject, so
      // no answer will come (an empty cluster, or one still starting).
      break;
    }
    if (s != NATS_OK) {
      return impl_->broker_error("cannot read the answers on " + *subject, s);
    }
    replies.emplace_back(natsMsg_GetData(m.get()), static_cast<std::size_t>(natsMsg_GetDataLength(m.get())));
  }
  natsSubscription_Unsubscribe(sub.get());
  return replies;
}

expected<void> nats_transport::publish_revocation(const std::string& workflow_id, const std::string& bytes) {
  auto subject = impl_->names.control(revoked_verb);
  if (!subject) {
    return subject.error();
  }
  // The same workflow revoked twice is stored once.
  auto id = "revoked-" + workflow_id;
  std::vector<outgoing> items{outgoing{&bytes, &id}};
  return impl_->publish(*subject, items, "the revoke notice of " + workflow_id);
}

expected<void> nats_transport::watch_revocations(std::function<void(std::string)> sink) {
  std::lock_guard<std::mutex> guard{impl_->revocation_mutex};
  if (impl_->revocations) {
    return error{errc::invalid_config, "watch_revocations: already watching"};
  }
  auto subject = impl_->names.control(revoked_verb);
  if (!subject) {
    return subject.error();
  }
  // What the stream holds now, to read all of it before returning.
  auto jo_info = impl_->api_options();
  jsStreamInfo* raw_info = nullptr;
  jsErrCode info_err = static_cast<jsErrCode>(0);
  auto s_info = js_GetStreamInfo(&raw_info, impl_->js.get(), impl_->names.revoked_stream().c_str(), &jo_info,
                                 &info_err);
  stream_info_ptr info{raw_info};
  if (s_info != NATS_OK) {
    return impl_->api_error("cannot read " + impl_->names.revoked_stream(), s_info, info_err);
  }
  auto kept_up_to = info->State.Msgs == 0 ? std::uint64_t{0} : info->State.LastSeq;
  auto w = std::make_unique<impl::revocation_watch>();
  w->self = impl_.get();
  w->sink = std::move(sink);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = nullptr;
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  auto jo = impl_->api_options();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_Subscribe(&sub, impl_->js.get(), subject->c_str(), &impl::on_revocation, w.get(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    return impl_->api_error("cannot read " + impl_->names.revoked_stream(), s, jerr);
  }
  w->sub.reset(sub);
  // Caught up before returning: a worker starts its handlers after this, so
  // none of them runs a task of a workflow revoked before it started.
  std::unique_lock<std::mutex> lock{w->mutex};
  bool caught_up = w->advanced.wait_for(lock, impl_->cfg.api_timeout, [&] { return w->read_up_to >= kept_up_to; });
  auto read = w->read_up_to;
  lock.unlock();
  impl_->revocations = std::move(w);
  if (!caught_up) {
    return error{errc::broker_unavailable, "read the revoked notices up to sequence " + std::to_string(read) +
                                               " of " + std::to_string(kept_up_to) + " in " +
                                               impl_->names.revoked_stream() + " within " +
                                               std::to_string(impl_->cfg.api_timeout.count()) + " ms"};
  }
  return {};
}

void nats_transport::on_reconnect(std::function<void()> listener) {
  std::lock_guard<std::mutex> guard{impl_->reconnect_mutex};
  impl_->reconnect_listeners.push_back(std::move(listener));
}

std::string nats_transport::process_name() const {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) {
    std::snprintf(host, sizeof host, "unknown-host");
  }
  return impl_->cfg.client_name + "@" + host + ":" + std::to_string(static_cast<long long>(getpid()));
}

void nats_transport::unwatch_done(const std::string& workflow_id) {
  std::lock_guard<std::mutex> guard{impl_->done_mutex};
  for (auto& w : impl_->done_watches) {
    if (!w->ended && w->workflow_id == workflow_id) {
      // Closes the subscription; nats.c ends its delivery thread once a
      // running callback returns. A failure (connection closed) leaves
      // nothing to end.
      natsSubscription_Unsubscribe(w->sub.get());
      w->ended = true;
    }
  }
}

std::int32_t nats_transport::max_deliver() const noexcept { return impl_->cfg.max_deliver; }

expected<void> nats_transport::watch_exhausted_tasks(std::function<void(exhausted_task)> sink) {
  {
    std::lock_guard<std::mutex> guard{impl_->lost_mutex};
    impl_->exhausted_sink = std::move(sink);
  }
  // Declared here too, for a transport that is not a dispatcher's. On a
  // failure the thread still starts, and it declares the consumer itself.
  expected<void> declared;
  if (impl_->cfg.declare_streams) {
    declared = impl_->declare_lost_stream();
  }
  if (declared) {
    std::lock_guard<std::mutex> guard{impl_->bindings_mutex};
    declared = impl_->ensure_lost_binding_locked();
  }
  std::lock_guard<std::mutex> guard{impl_->lost_mutex};
  if (!impl_->lost_thread.joinable() && !impl_->closed) {
    impl_->lost_thread = std::thread{[p = impl_.get()] { p->lost_loop(); }};
  }
  return declared;
}

expected<void> nats_transport::settle_exhausted_task(std::uint64_t token) {
  std::uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> guard{impl_->lost_mutex};
    auto i = impl_->lost_unacked.find(token);
    if (i == impl_->lost_unacked.end()) {
      return {};
    }
    sequence = i->second.task_sequence;
  }
  // The task first: acked before, the advisory would be gone while the task
  // stays in the stream with nothing left to remove it.
  if (auto ok = discard_exhausted_task(sequence); !ok) {
    return ok;
  }
  if (auto held = impl_->take_lost(token)) {
    impl_->ack_lost(*held);
  }
  return {};
}

void nats_transport::pass_exhausted_task(std::uint64_t token) {
  if (auto held = impl_->take_lost(token)) {
    impl_->ack_lost(*held);
  }
}

expected<void> nats_transport::discard_exhausted_task(std::uint64_t stream_sequence) {
  auto stream = impl_->names.task_stream();
  auto jo = impl_->api_options();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_DeleteMsg(impl_->js.get(), stream.c_str(), stream_sequence, &jo, &jerr);
  if (s == NATS_OK) {
    return {};
  }
  // Deleting a message that is already gone is reported as a generic delete
  // failure; look it up to tell the two apart.
  natsMsg* raw = nullptr;
  jsErrCode get_err = static_cast<jsErrCode>(0);
  auto g = js_GetMsg(&raw, impl_->js.get(), stream.c_str(), stream_sequence, &jo, &get_err);
  message_ptr still_there{raw};
  if (g != NATS_OK && get_err == JSNoMessageFoundErr) {
    return {};
  }
  return impl_->api_error("cannot delete message " + std::to_string(stream_sequence) + " of " + stream, s, jerr);
}

expected<std::uint64_t> nats_transport::queue_depth(const std::string& queue) {
  auto subject = impl_->names.task(queue);
  if (!subject) {
    return subject.error();
  }
  auto stream = impl_->names.task_stream();
  auto jo = impl_->api_options();
  // The stream holds a queue's messages until they are acked (work queue),
  // so its per-subject count is the lag: waiting plus delivered-not-acked.
  jo.Stream.Info.SubjectsFilter = subject->c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_GetStreamInfo(&raw, impl_->js.get(), stream.c_str(), &jo, &jerr);
  stream_info_ptr info{raw};
  if (s != NATS_OK) {
    return impl_->api_error("cannot read the depth of queue '" + queue + "' from " + stream, s, jerr);
  }
  if (info->State.Subjects == nullptr) {
    return std::uint64_t{0};
  }
  for (int i = 0; i < info->State.Subjects->Count; ++i) {
    if (*subject == info->State.Subjects->List[i].Subject) {
      return info->State.Subjects->List[i].Msgs;
    }
  }
  return std::uint64_t{0};
}

// Sequence numbers work_already_out reads at most per stream: a few
// seconds of requests on loopback.
constexpr std::uint64_t max_restore_reads = 200'000;

expected<std::unordered_set<std::string>> nats_transport::work_already_out(int partition) {
  auto events_subject = impl_->names.event(partition);
  if (!events_subject) {
    return events_subject.error();
  }
  std::unordered_set<std::string> out;
  auto jo = impl_->api_options();
  // Tasks first, then outcomes (see transport::work_already_out).
  for (const auto& [stream, only_subject] : {std::pair{impl_->names.task_stream(), std::string{}},
                                             std::pair{impl_->names.event_stream(), *events_subject}}) {
    jsStreamInfo* raw_info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_GetStreamInfo(&raw_info, impl_->js.get(), stream.c_str(), &jo, &jerr);
    stream_info_ptr info{raw_info};
    if (s != NATS_OK) {
      return impl_->api_error("cannot read stream " + stream + " before a restore", s, jerr);
    }
    // A work queue deletes acked messages, so the range between its first
    // and last sequence can be mostly holes, each one request. The read
    // stops once it saw every stored message, or after a bounded number of
    // requests: what it did not see is published again (a copy may then
    // run twice; none is lost).
    std::uint64_t seen = 0;
    std::uint64_t requests = 0;
    for (auto seq = info->State.FirstSeq;
         seq <= info->State.LastSeq && seen < info->State.Msgs && requests < max_restore_reads; ++seq, ++requests) {
      natsMsg* raw = nullptr;
      s = js_GetMsg(&raw, impl_->js.get(), stream.c_str(), seq, &jo, &jerr);
      message_ptr stored{raw};
      if (s != NATS_OK && jerr == JSNoMessageFoundErr) {
        continue;  // acked and removed (a work queue), or never there
      }
      ++seen;
      if (s != NATS_OK) {
        return impl_->api_error("cannot read message " + std::to_string(seq) + " of " + stream + " before a restore",
                                s, jerr);
      }
      if ((!only_subject.empty() && only_subject != natsMsg_GetSubject(stored.get())) ||
          refusal_of(impl_->cfg.signer.get(), stored.get())) {
        continue;  // another partition's, or one no worker or dispatcher would take
      }
      std::vector<std::string> bodies;
      if (auto unpacked = unpack_message(stored.get())) {
        if (!*unpacked) {
          continue;  // a forged pack: dead-lettered when delivered, never run
        }
        bodies = std::move(**unpacked);
      } else {
        bodies.emplace_back(natsMsg_GetData(stored.get()), static_cast<std::size_t>(natsMsg_GetDataLength(stored.get())));
      }
      for (const auto& body : bodies) {
        auto e = decode(body);
        if (e && (e->type == envelope_type::task || e->type == envelope_type::outcome)) {
          out.insert(e->workflow_id + ":" + std::to_string(e->node) + ":" + std::to_string(e->attempt));
        }
      }
    }
  }
  return out;
}

bool nats_transport::is_connected() const {
  return natsConnection_Status(impl_->conn.get()) == NATS_CONN_STATUS_CONNECTED;
}

std::optional<error> nats_transport::last_error() const {
  std::lock_guard<std::mutex> guard{impl_->error_mutex};
  return impl_->last_error;
}

std::string nats_transport::describe() const { return impl_->cfg.redacted(); }

}  // namespace trellis::detail
