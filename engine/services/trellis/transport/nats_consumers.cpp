#include "trellis/transport/nats_consumers.hpp"

#include "trellis/envelope.hpp"
#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_messages.hpp"

#include <algorithm>
#include <climits>
#include <optional>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The expiry of a no-wait pull request. nats-server 2.9 answers one at once
// when the consumer has messages, but for an empty consumer only at this
// expiry (measured: a worker with 13 queues took 2 s per chain step with
// 200 ms here, 33 ms with 2 ms). So it is what asking an empty consumer
// costs, and is kept short; an answer later than it (a slow link) lands in
// the subscription, where the next fetch on it takes it (fetch_messages).
constexpr milliseconds no_wait_expiry{2};
// Sequence numbers work_already_out reads at most per stream: a few
// seconds of requests on loopback.
constexpr std::uint64_t max_restore_reads = 200'000;

expected<void> declare_consumer(nats_connection& conn, const consumer_binding& b) {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = b.consumer.c_str();
  // A lost-task consumer starts at the stream's end: created when its
  // partition's first dispatcher connects, before that partition has
  // published any task, it owes nothing from before. Replaying the older
  // advisories could match their sequences to other tasks if the task
  // stream was ever created anew.
  cc.DeliverPolicy = b.stream == conn.names().lost_stream() ? js_DeliverNew : js_DeliverAll;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = to_nanos(conn.cfg().ack_wait);
  // Events and lost-task advisories are never given up on (-1: no limit):
  // a dispatcher that dies while holding them is not their fault, and one
  // JetStream stopped delivering would leave its workflow waiting forever.
  cc.MaxDeliver = b.stream == conn.names().task_stream() ? conn.cfg().max_deliver : -1;
  cc.MaxAckPending = conn.cfg().max_ack_pending;
  cc.FilterSubject = b.filter.c_str();
  auto jo = conn.api_options();
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_AddConsumer(&info, conn.js(), b.stream.c_str(), &cc, &jo, &jerr);
  consumer_info_ptr added{info};
  if (s == NATS_OK) {
    return {};
  }
  if (jerr != JSConsumerNameExistErr) {
    auto e = conn.api_error("cannot create consumer " + b.consumer + " of " + b.stream + " for " + b.label, s, jerr);
    if (e.code() == errc::invalid_config) {
      // The usual cause: workers of one namespace mixing `all_task_queues`
      // with named queues, which a work-queue stream forbids.
      return error{e.code(), e.message() +
                                 "; within a namespace either every worker serves all queues or "
                                 "every worker names its queues"};
    }
    return e;
  }
  info = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_UpdateConsumer(&info, conn.js(), b.stream.c_str(), &cc, &jo, &jerr);
  consumer_info_ptr updated{info};
  if (s != NATS_OK) {
    return conn.api_error("consumer " + b.consumer + " exists with a configuration that cannot be updated", s, jerr);
  }
  return {};
}

}  // namespace

expected<std::unique_ptr<consumer_binding>> bind_consumer(nats_connection& conn, std::string label, std::string stream,
                                                          std::string consumer, std::string filter) {
  if (auto down = conn.unless_connected("declare consumer " + consumer + " for " + label)) {
    return *down;
  }
  auto b = std::make_unique<consumer_binding>();
  b->label = std::move(label);
  b->stream = std::move(stream);
  b->consumer = std::move(consumer);
  b->filter = std::move(filter);
  if (auto ok = declare_consumer(conn, *b); !ok) {
    return ok.error();
  }
  return b;
}

expected<natsSubscription*> consumer_binding::borrow(nats_connection& conn) {
  {
    std::lock_guard<std::mutex> guard{mutex};
    if (!idle.empty()) {
      // One holding messages a timed-out request brought late first, so
      // that they are taken now (fetch_messages) rather than wait, unseen
      // and unmarked, for their AckWait to pass.
      auto pick = idle.end() - 1;
      for (auto i = idle.begin(); i != idle.end(); ++i) {
        int waiting = 0;
        int waiting_bytes = 0;
        if (natsSubscription_GetPending(*i, &waiting, &waiting_bytes) == NATS_OK && waiting > 0) {
          pick = i;
          break;
        }
      }
      auto* sub = *pick;
      idle.erase(pick);
      return sub;
    }
  }
  if (auto down = conn.unless_connected("subscribe to consumer " + consumer)) {
    // Binding is a JetStream request; made now it would wait out
    // api_timeout in the reconnect buffer, far beyond the fetch's wait.
    return *down;
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  // Bind to the consumer declared at connect; never create one here, since
  // a consumer created by a subscription disappears with it.
  so.Stream = stream.c_str();
  so.Consumer = consumer.c_str();
  auto jo = conn.api_options();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_PullSubscribe(&sub, conn.js(), filter.c_str(), consumer.c_str(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    return conn.api_error("cannot subscribe to consumer " + consumer + " for " + label, s, jerr);
  }
  std::lock_guard<std::mutex> guard{mutex};
  owned.emplace_back(sub);
  return sub;
}

void consumer_binding::give_back(natsSubscription* sub) {
  std::lock_guard<std::mutex> guard{mutex};
  idle.push_back(sub);
}

// ---------------------------------------------------------------------------

pull_consumers::pull_consumers(nats_connection& conn, upload_store& uploads, std::string event_subject)
    : conn_(conn), uploads_(uploads), event_subject_(std::move(event_subject)), census_(conn, task_census_interval) {}

expected<void> pull_consumers::declare() {
  std::lock_guard<std::mutex> guard{bindings_mutex_};
  if (conn_.cfg().all_task_queues) {
    if (auto b = all_queues_bindings_locked(); !b) {
      return b.error();
    }
  }
  for (const auto& q : conn_.cfg().task_queues) {
    if (auto b = queue_bindings_locked(q); !b) {
      return b.error();
    }
  }
  if (conn_.cfg().consume_events) {
    if (auto ok = ensure_event_binding_locked(); !ok) {
      return ok;
    }
  }
  return {};
}

/// The event consumer, declared on first use. Caller holds bindings_mutex_.
expected<void> pull_consumers::ensure_event_binding_locked() {
  if (event_binding_) {
    return {};
  }
  auto consumer = conn_.names().event_consumer(conn_.cfg().partition);
  if (!consumer) {
    return consumer.error();
  }
  auto b = bind_consumer(conn_, "events of partition " + std::to_string(conn_.cfg().partition),
                         conn_.names().event_stream(), *consumer, event_subject_);
  if (!b) {
    return b.error();
  }
  event_binding_ = std::move(*b);
  return {};
}

consumer_binding* pull_consumers::event_binding() {
  std::lock_guard<std::mutex> guard{bindings_mutex_};
  if (auto ok = ensure_event_binding_locked(); !ok) {
    conn_.remember(ok.error());
  }
  return event_binding_.get();
}

natsStatus pull_consumers::fetch_events(consumer_binding& b, std::vector<delivery>& out) {
  return fetch_once(b, conn_.cfg().max_messages_per_pull, max_fetch_slice, false, out);
}

/// Turns fetched messages into deliveries whose tokens keep each natsMsg
/// alive until it is acked. A `late` message waited in its subscription for
/// an unknown time after JetStream delivered it, so its redelivery clock may
/// be well along: it counts as not heard of since long ago, and the next
/// keep-alive round marks it in progress at once.
void pull_consumers::adopt(natsMsgList& list, std::vector<delivery>& out, bool tasks, bool late) {
  const auto heard = late ? clock::time_point{} : clock::now();
  // The whole bodies of stubs first, outside the lock: each piece is a
  // broker request, and acks must not wait behind them. A stub whose pieces
  // cannot be read goes on as a refused delivery with the reason: the
  // worker (for a task) or the dispatcher dead-letters it.
  std::vector<std::optional<expected<std::string>>> whole(static_cast<std::size_t>(std::max(0, list.Count)));
  for (int i = 0; i < list.Count; ++i) {
    if (list.Msgs[i] != nullptr) {
      whole[static_cast<std::size_t>(i)] = uploads_.body_of(list.Msgs[i]);
    }
  }
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  for (int i = 0; i < list.Count; ++i) {
    message_ptr m{list.Msgs[i]};
    list.Msgs[i] = nullptr;
    if (!m) {
      continue;
    }
    if (auto& stub = whole[static_cast<std::size_t>(i)]) {
      adopt_stub(std::move(m), std::move(*stub), out, tasks, heard);
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
    entry->task = tasks;
    entry->heard = heard;
    // The signature covers the whole message, a pack included: a refused
    // pack goes on whole, as one refused delivery, unread.
    auto refused = refusal_of(conn_.cfg().security.signer.get(), m.get());
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
        auto token = next_token_++;
        out.push_back(delivery{std::move(e), token, count});
        inflight_.emplace(token, entry);
      }
    } else {
      auto token = next_token_++;
      out.push_back(delivery{std::string{data, size}, token, count, std::move(refused)});
      inflight_.emplace(token, std::move(entry));
    }
  }
}

/// Moves up to `batch` tasks left over from earlier packs into `out`;
/// whether there were any.
bool pull_consumers::take_ready(consumer_binding& b, int batch, std::vector<delivery>& out) {
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
void pull_consumers::keep_batch(consumer_binding& b, std::size_t taken, std::size_t messages, int batch,
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
natsStatus pull_consumers::fetch_once(consumer_binding& b, int batch, milliseconds wait, bool no_wait,
                                      std::vector<delivery>& out, bool tasks) {
  if (tasks) {
    if (take_ready(b, batch, out)) {
      return NATS_OK;
    }
    std::size_t per_message = 1;
    {
      std::lock_guard<std::mutex> guard{b.mutex};
      if (b.envelopes_per_message == 0) {
        // First fetch: assume full packs rather than grab `batch` of them.
        b.envelopes_per_message = static_cast<std::size_t>(std::max(1, conn_.cfg().task_pack_max));
      }
      per_message = b.envelopes_per_message;
    }
    auto wanted = (static_cast<std::size_t>(batch) + per_message - 1) / per_message;
    auto messages = static_cast<int>(std::max<std::size_t>(1, wanted));
    auto taken = out.size();
    auto s = fetch_messages(b, messages, wait, no_wait, out, true);
    keep_batch(b, taken, static_cast<std::size_t>(s.second), batch, out);
    return s.first;
  }
  return fetch_messages(b, batch, wait, no_wait, out, false).first;
}

/// Takes up to `batch` messages already waiting in `sub` (brought late by a
/// request whose fetch had timed out), one at a time, into `out`. Returns
/// how many.
int pull_consumers::take_leftovers(natsSubscription* sub, int batch, std::vector<delivery>& out, bool tasks) {
  int received = 0;
  int waiting = 0;
  int waiting_bytes = 0;
  while (received < batch && natsSubscription_GetPending(sub, &waiting, &waiting_bytes) == NATS_OK && waiting > 0) {
    jsFetchRequest one;
    jsFetchRequest_Init(&one);
    one.Batch = 1;
    one.NoWait = true;
    one.Expires = to_nanos(no_wait_expiry);
    message_list leftover;
    if (natsSubscription_FetchRequest(&leftover.list, sub, &one) != NATS_OK) {
      break;
    }
    received += leftover.list.Count;
    adopt(leftover.list, out, tasks, true);
  }
  return received;
}

/// Task messages that arrived in an idle subscription after the fetch that
/// asked for them gave up (a no-wait answer later than its expiry on a
/// loaded machine) are nobody's yet: no fetch may come for them while the
/// worker's threads run handlers, and unmarked they would be delivered a
/// second time after AckWait. Moves them to their binding's ready tasks,
/// where the keep-alive marks them and the next fetch hands them out.
void pull_consumers::adopt_late_tasks() {
  std::vector<consumer_binding*> bindings;
  {
    std::lock_guard<std::mutex> guard{bindings_mutex_};
    for (auto& b : all_bindings_) {
      bindings.push_back(b.get());
    }
    for (auto& [queue, bound] : task_bindings_) {
      for (auto& b : bound) {
        bindings.push_back(b.get());
      }
    }
  }
  for (auto* b : bindings) {
    natsSubscription* sub = nullptr;
    {
      std::lock_guard<std::mutex> guard{b->mutex};
      for (auto i = b->idle.begin(); i != b->idle.end(); ++i) {
        int waiting = 0;
        int waiting_bytes = 0;
        if (natsSubscription_GetPending(*i, &waiting, &waiting_bytes) == NATS_OK && waiting > 0) {
          sub = *i;
          b->idle.erase(i);
          break;
        }
      }
    }
    if (sub == nullptr) {
      continue;
    }
    std::vector<delivery> late;
    take_leftovers(sub, INT_MAX, late, true);
    b->give_back(sub);
    std::lock_guard<std::mutex> guard{b->mutex};
    for (auto& d : late) {
      b->ready.push_back(std::move(d));
    }
  }
}

/// One pull request for up to `batch` messages on `b`, every envelope of
/// them appended to `out`. Returns the status and the messages received.
std::pair<natsStatus, int> pull_consumers::fetch_messages(consumer_binding& b, int batch, milliseconds wait,
                                                          bool no_wait, std::vector<delivery>& out, bool tasks) {
  auto sub = b.borrow(conn_);
  if (!sub) {
    conn_.remember(sub.error());
    return {NATS_ERR, 0};
  }
  // nats.c 3.4.1 overruns the message array of a fetch that finds more
  // than half its batch already waiting in the subscription (js.c _fetch
  // lowers req->Batch by what it collected, then loops until the count
  // equals the lowered value), which corrupted the heap of busy workers.
  // Such leftovers are messages a previous fetch's request brought after
  // that fetch timed out. Take them one at a time first: a batch of one
  // cannot overrun.
  int received = take_leftovers(*sub, batch, out, tasks);
  if (received > 0) {
    b.give_back(*sub);
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
  b.give_back(*sub);
  if (s == NATS_OK) {
    received = fetched.list.Count;
    adopt(fetched.list, out, tasks);
  } else if (!is_no_message(s)) {
    conn_.remember(conn_.broker_error("cannot fetch from consumer " + b.consumer + " for " + b.label, s, jerr));
  }
  return {s, received};
}

/// A stub and the body its pieces hold (or why they cannot be read): one
/// delivery of the whole body, which holds the stub's natsMsg and, in
/// `upload`, what to remove once it is acked. Caller holds inflight_mutex_.
void pull_consumers::adopt_stub(message_ptr m, expected<std::string> body, std::vector<delivery>& out, bool tasks,
                                clock::time_point heard) {
  std::int32_t count = 1;
  jsMsgMetaData* raw = nullptr;
  if (natsMsg_GetMetaData(&raw, m.get()) == NATS_OK) {
    metadata_ptr meta{raw};
    count = static_cast<std::int32_t>(std::min<std::uint64_t>(meta->NumDelivered, INT32_MAX));
  }
  auto entry = std::make_shared<inflight_message>();
  entry->task = tasks;
  entry->heard = heard;
  entry->upload = upload_store::header_of(m.get()).value_or("");
  std::optional<error> refused;
  std::string bytes;
  if (body) {
    bytes = std::move(*body);
    refused = refusal_of(conn_.cfg().security.signer.get(), m.get(), &bytes);
  } else {
    refused = body.error();
    bytes = std::string{upload_header} + ": " + entry->upload;  // what an operator can look up
  }
  entry->msg = std::move(m);
  auto token = next_token_++;
  out.push_back(delivery{std::move(bytes), token, count, std::move(refused)});
  inflight_.emplace(token, std::move(entry));
}

void pull_consumers::ack(const delivery& d) { settle(d, false); }

void pull_consumers::release(const delivery& d) { settle(d, true); }

void pull_consumers::settle(const delivery& d, bool released) {
  std::shared_ptr<inflight_message> done;
  {
    std::lock_guard<std::mutex> guard{inflight_mutex_};
    auto i = inflight_.find(d.token);
    if (i == inflight_.end()) {
      return;
    }
    auto entry = std::move(i->second);
    inflight_.erase(i);
    if (unacked_events_.erase(d.token) != 0 && unacked_events_.size() < conn_.cfg().max_events_in_flight) {
      events_acked_.notify_one();  // the event loop may fetch again
    }
    entry->released = entry->released || released;
    // A pack is acked with its last event: until then JetStream may
    // deliver it again, and the dispatcher ignores the events it committed.
    if (--entry->unacked != 0) {
      return;
    }
    done = std::move(entry);
  }
  auto& m = done->msg;
  if (!done->upload.empty() && !done->released) {
    // A stub: its pieces go once the ack is confirmed, so that a
    // redelivery (the ack lost) still finds them; a failure leaves them to
    // the uploads stream's MaxAge.
    if (auto s = natsMsg_AckSync(m.get(), nullptr, nullptr); s != NATS_OK) {
      conn_.remember(conn_.broker_error("cannot ack a delivery (it will be delivered again after ack_wait)", s));
      return;
    }
    uploads_.remove(done->upload);
    return;
  }
  // Neither waits for the server: they ride the connection's buffered
  // writes. If one is lost, JetStream delivers once more after AckWait.
  if (done->released) {
    if (auto s = natsMsg_Nak(m.get(), nullptr); s != NATS_OK) {
      conn_.remember(conn_.broker_error("cannot hand back a delivery (it will be delivered again after ack_wait)", s));
    }
    return;
  }
  if (auto s = natsMsg_Ack(m.get(), nullptr); s != NATS_OK) {
    conn_.remember(conn_.broker_error("cannot ack a delivery (it will be delivered again after ack_wait)", s));
  }
}

void pull_consumers::touch(const delivery& d) {
  // Under the lock: the natsMsg must outlive the call, and an ack may
  // take it out of the map at any time. The call only buffers a publish.
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  auto i = inflight_.find(d.token);
  if (i == inflight_.end()) {
    return;
  }
  if (auto s = natsMsg_InProgress(i->second->msg.get(), nullptr); s != NATS_OK) {
    conn_.remember(
        conn_.broker_error("cannot mark a delivery in progress (it may be delivered again after ack_wait)", s));
  }
}
void pull_consumers::keep_alive(milliseconds quiet) {
  adopt_late_tasks();
  // Which messages first, then the in-progress calls in slices under the
  // lock: a dispatcher may hold tens of thousands of events, and acks must
  // not wait behind all of them. The lock also keeps a touch from running
  // beside an ack of the same message (nats.c's natsMsg is not
  // thread-safe): settle() counts `unacked` down under it before it acks
  // outside, so a message still counting is not being acked.
  auto now = clock::now();
  std::vector<std::shared_ptr<inflight_message>> held;
  {
    std::lock_guard<std::mutex> guard{inflight_mutex_};
    std::unordered_set<const inflight_message*> seen;
    for (const auto& [token, entry] : inflight_) {
      if (now - entry->heard >= quiet && (entry->task || unacked_events_.count(token) != 0) &&
          seen.insert(entry.get()).second) {
        held.push_back(entry);
      }
    }
  }
  constexpr std::size_t slice = 256;
  for (std::size_t first = 0; first < held.size() && !conn_.closed(); first += slice) {
    std::lock_guard<std::mutex> guard{inflight_mutex_};
    for (auto i = first; i < std::min(held.size(), first + slice); ++i) {
      if (held[i]->unacked == 0) {
        continue;
      }
      if (auto s = natsMsg_InProgress(held[i]->msg.get(), nullptr); s != NATS_OK) {
        conn_.remember(
            conn_.broker_error("cannot mark a delivery in progress (it may be delivered again after ack_wait)", s));
        return;  // disconnected: the next round tries again
      }
      held[i]->heard = now;
    }
  }
}

bool pull_consumers::wait_for_event_room() {
  std::unique_lock<std::mutex> lock{inflight_mutex_};
  events_acked_.wait(lock,
                     [this] { return conn_.closed() || unacked_events_.size() < conn_.cfg().max_events_in_flight; });
  return !conn_.closed();
}

void pull_consumers::forget_unacked_events() {
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  unacked_events_.clear();
  events_acked_.notify_all();
}

void pull_consumers::hand_out_events(const std::vector<delivery>& batch) {
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  for (const auto& d : batch) {
    unacked_events_.insert(d.token);
  }
}

void pull_consumers::wake_event_waiters() {
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  events_acked_.notify_all();
}

expected<std::unordered_set<std::string>> pull_consumers::work_already_out(int partition) {
  auto events_subject = conn_.names().event(partition);
  if (!events_subject) {
    return events_subject.error();
  }
  std::unordered_set<std::string> out;
  auto jo = conn_.api_options();
  // Tasks first, then outcomes (see transport::work_already_out).
  for (const auto& [stream, only_subject] : {std::pair{conn_.names().task_stream(), std::string{}},
                                             std::pair{conn_.names().event_stream(), *events_subject}}) {
    jsStreamInfo* raw_info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_GetStreamInfo(&raw_info, conn_.js(), stream.c_str(), &jo, &jerr);
    stream_info_ptr info{raw_info};
    if (s != NATS_OK) {
      return conn_.api_error("cannot read stream " + stream + " before a restore", s, jerr);
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
      s = js_GetMsg(&raw, conn_.js(), stream.c_str(), seq, &jo, &jerr);
      message_ptr stored{raw};
      if (s != NATS_OK && jerr == JSNoMessageFoundErr) {
        continue;  // acked and removed (a work queue), or never there
      }
      ++seen;
      if (s != NATS_OK) {
        return conn_.api_error("cannot read message " + std::to_string(seq) + " of " + stream + " before a restore", s,
                               jerr);
      }
      if (!only_subject.empty() && only_subject != natsMsg_GetSubject(stored.get())) {
        continue;  // another partition's
      }
      std::optional<std::string> whole;  // a stub's
      if (auto stub = uploads_.body_of(stored.get())) {
        if (!*stub) {
          continue;  // unreadable: dead-lettered when delivered, never run
        }
        whole = std::move(**stub);
      }
      if (refusal_of(conn_.cfg().security.signer.get(), stored.get(), whole ? &*whole : nullptr)) {
        continue;  // one no worker or dispatcher would take
      }
      std::vector<std::string> bodies;
      if (whole) {
        bodies.push_back(std::move(*whole));
      } else if (auto unpacked = unpack_message(stored.get())) {
        if (!*unpacked) {
          continue;  // a forged pack: dead-lettered when delivered, never run
        }
        bodies = std::move(**unpacked);
      } else {
        bodies.emplace_back(natsMsg_GetData(stored.get()),
                            static_cast<std::size_t>(natsMsg_GetDataLength(stored.get())));
      }
      for (const auto& body : bodies) {
        auto e = decode(body);
        if (e && (e->type == envelope_type::task || e->type == envelope_type::outcome ||
                  e->type == envelope_type::replace)) {
          out.insert(e->workflow_id + ":" + std::to_string(e->node) + ":" + std::to_string(e->attempt));
        }
      }
    }
  }
  return out;
}

void pull_consumers::forget_deliveries() {
  std::lock_guard<std::mutex> guard{inflight_mutex_};
  inflight_.clear();
}

void pull_consumers::clear_bindings() {
  std::lock_guard<std::mutex> guard{bindings_mutex_};
  event_binding_.reset();
  all_bindings_.clear();
  task_bindings_.clear();
}

}  // namespace trellis::detail
