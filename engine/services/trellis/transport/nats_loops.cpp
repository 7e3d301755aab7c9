#include "trellis/transport/nats_loops.hpp"

#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_messages.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;

// How long the lost stream keeps a MAX_DELIVERIES advisory: long enough for
// a partition's dispatcher to come back from any outage worth waiting for.
constexpr std::chrono::hours lost_advisory_max_age{24 * 7};

/// Joins `t`, or detaches it when called from `t` itself (close() from
/// inside a sink: the loop ends after the call in progress).
void join_unless_self(std::thread& t) {
  if (!t.joinable()) {
    return;
  }
  if (t.get_id() == std::this_thread::get_id()) {
    t.detach();
  } else {
    t.join();
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// The event thread.

void event_feed::start(std::function<void(std::vector<delivery>)> sink) {
  consumers_.forget_unacked_events();
  std::lock_guard<std::mutex> guard{mutex_};
  sink_ = std::move(sink);
  if (!thread_.joinable() && !conn_.closed()) {
    thread_ = std::thread{[this] { loop(); }};
  }
}

void event_feed::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    t = std::move(thread_);
  }
  join_unless_self(t);
}

void event_feed::loop() {
  while (!conn_.closed()) {
    auto* b = consumers_.event_binding();
    if (b == nullptr) {
      conn_.pause(event_retry_pause);
      continue;
    }
    if (!consumers_.wait_for_event_room()) {
      break;
    }
    std::vector<delivery> batch;
    auto before = clock::now();
    auto s = consumers_.fetch_events(*b, batch);
    if (!batch.empty()) {
      consumers_.hand_out_events(batch);
      std::function<void(std::vector<delivery>)> deliver;
      {
        std::lock_guard<std::mutex> guard{mutex_};
        deliver = sink_;
      }
      if (deliver) {
        deliver(std::move(batch));
      }
    } else if (s != NATS_OK && !is_no_message(s) && clock::now() - before < max_fetch_slice) {
      conn_.pause(event_retry_pause);
    }
  }
}

// ---------------------------------------------------------------------------
// The keep-alive thread.

void delivery_keepalive::start() {
  if (started_.load(std::memory_order_acquire)) {
    return;
  }
  std::lock_guard<std::mutex> guard{mutex_};
  if (!thread_.joinable() && !conn_.closed()) {
    thread_ = std::thread{[this] { loop(); }};
    started_.store(true, std::memory_order_release);
  }
}

void delivery_keepalive::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    t = std::move(thread_);
  }
  join_unless_self(t);
}

void delivery_keepalive::loop() {
  // A third of AckWait: one in-progress lost or late still leaves two more
  // before the deadline.
  auto every = std::max(std::chrono::milliseconds{10}, conn_.cfg().ack_wait / 3);
  while (!conn_.closed()) {
    conn_.pause(every);
    if (!conn_.closed()) {
      consumers_.keep_alive(every);
    }
  }
}

// ---------------------------------------------------------------------------
// The lost-task thread (MAX_DELIVERIES advisories, kept in the lost stream).

expected<void> lost_task_watch::declare_stream() {
  auto name = conn_.names().lost_stream();
  auto subject = conn_.names().task_max_deliveries_advisory();
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig sc;
  conn_.init_stream(sc, name, subjects, js_LimitsPolicy);
  sc.MaxAge =
      static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(lost_advisory_max_age).count());
  return conn_.add_or_update_stream(sc, name, subject);
}

expected<void> lost_task_watch::bind() {
  std::lock_guard<std::mutex> guard{binding_mutex_};
  return bind_locked();
}

/// Declares `lost-<partition>` on first use. Caller holds binding_mutex_.
expected<void> lost_task_watch::bind_locked() {
  if (binding_) {
    return {};
  }
  auto consumer = conn_.names().lost_consumer(conn_.cfg().partition);
  if (!consumer) {
    return consumer.error();
  }
  auto b = bind_consumer(conn_, "lost tasks seen by partition " + std::to_string(conn_.cfg().partition),
                         conn_.names().lost_stream(), *consumer, conn_.names().task_max_deliveries_advisory());
  if (!b) {
    return b.error();
  }
  binding_ = std::move(*b);
  return {};
}

// One advisory at a time: they are rare, and a batch of one cannot overrun
// nats.c's fetch (see pull_consumers::fetch_messages).
void lost_task_watch::loop() {
  while (!conn_.closed()) {
    consumer_binding* b = nullptr;
    {
      std::lock_guard<std::mutex> guard{binding_mutex_};
      if (auto ok = bind_locked(); !ok) {
        conn_.remember(ok.error());
      }
      b = binding_.get();
    }
    if (b == nullptr) {
      conn_.pause(event_retry_pause);
      continue;
    }
    auto sub = b->borrow(conn_);
    if (!sub) {
      conn_.remember(sub.error());
      conn_.pause(event_retry_pause);
      continue;
    }
    message_list fetched;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto before = clock::now();
    auto s = natsSubscription_Fetch(&fetched.list, *sub, 1, max_fetch_slice.count(), &jerr);
    b->give_back(*sub);
    if (s != NATS_OK) {
      if (!is_no_message(s)) {
        conn_.remember(conn_.broker_error("cannot fetch from consumer " + b->consumer + " for " + b->label, s, jerr));
        if (clock::now() - before < max_fetch_slice) {
          conn_.pause(event_retry_pause);
        }
      }
      continue;
    }
    for (int i = 0; i < fetched.list.Count; ++i) {
      message_ptr m{fetched.list.Msgs[i]};
      fetched.list.Msgs[i] = nullptr;
      if (m) {
        handle_advisory(std::move(m));
      }
    }
  }
}

/// Acks an advisory that will never lead anywhere, saying why.
void lost_task_watch::skip_advisory(natsMsg* msg, error why) {
  conn_.remember(std::move(why));
  if (auto s = natsMsg_Ack(msg, nullptr); s != NATS_OK) {
    conn_.remember(conn_.broker_error("cannot ack a skipped MAX_DELIVERIES advisory", s));
  }
}

void lost_task_watch::handle_advisory(message_ptr msg) {
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
                                                                 std::string{natsMsg_GetSubject(msg.get())} + " in " +
                                                                 conn_.names().lost_stream() + "; skipped"});
    return;
  }
  exhausted_task t;
  t.token = key;
  t.stream_sequence = doc["stream_seq"].get<std::uint64_t>();
  t.deliveries = doc.value("deliveries", std::int32_t{0});
  auto jo = conn_.api_options();
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_GetMsg(&raw, conn_.js(), conn_.names().task_stream().c_str(), t.stream_sequence, &jo, &jerr);
  message_ptr stored{raw};
  if (s != NATS_OK && jerr == JSNoMessageFoundErr) {
    // Settled before (by this partition's owner, whose ack of the advisory
    // was lost), or acked late by its worker: nothing left to decide.
    if (auto a = natsMsg_Ack(msg.get(), nullptr); a != NATS_OK) {
      conn_.remember(
          conn_.broker_error("cannot ack the advisory of gone task " + std::to_string(t.stream_sequence), a));
    }
    return;
  }
  if (s != NATS_OK) {
    // Left unacked: the advisory comes again after ack_wait.
    conn_.remember(conn_.broker_error("cannot read exhausted task " + std::to_string(t.stream_sequence) + " of " +
                                          conn_.names().task_stream() + " (its advisory comes again after ack_wait)",
                                      s, jerr));
    return;
  }
  std::string subject = natsMsg_GetSubject(stored.get());
  auto parts = conn_.names().task_subject_parts(subject);
  t.queue = parts ? parts->first : subject;
  const char* data = natsMsg_GetData(stored.get());
  auto size = static_cast<std::size_t>(natsMsg_GetDataLength(stored.get()));
  // Every task of an exhausted pack was lost with it; one that does not
  // parse goes on whole, for the dispatcher to dead-letter as unreadable.
  std::vector<std::string> tasks;
  if (auto stub = uploads_.body_of(stored.get())) {
    // A stub's pieces stay in the uploads stream until its MaxAge: the
    // dispatcher dead-letters the whole body, which a replay publishes anew.
    tasks.push_back(*stub ? std::move(**stub)
                          : std::string{upload_header} + ": " + upload_store::header_of(stored.get()).value_or(""));
  } else if (auto unpacked = unpack_message(stored.get()); unpacked && *unpacked) {
    tasks = std::move(**unpacked);
  }
  if (tasks.empty()) {
    tasks.emplace_back(data, size);
  }
  std::function<void(exhausted_task)> deliver;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    deliver = sink_;
    unacked_[key] = lost_advisory{std::move(msg), t.stream_sequence};
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
std::optional<lost_task_watch::lost_advisory> lost_task_watch::take(std::uint64_t token) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = unacked_.find(token);
  if (i == unacked_.end()) {
    return std::nullopt;
  }
  auto held = std::move(i->second);
  unacked_.erase(i);
  return held;
}

void lost_task_watch::ack(lost_advisory& held) {
  if (auto s = natsMsg_Ack(held.msg.get(), nullptr); s != NATS_OK) {
    conn_.remember(conn_.broker_error("cannot ack the advisory of exhausted task " +
                                          std::to_string(held.task_sequence) + " (it comes again after ack_wait)",
                                      s));
  }
}

expected<void> lost_task_watch::watch(std::function<void(exhausted_task)> sink) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    sink_ = std::move(sink);
  }
  // Declared here too, for a transport that is not a dispatcher's. On a
  // failure the thread still starts, and it declares the consumer itself.
  expected<void> declared;
  if (conn_.cfg().declare_streams) {
    declared = declare_stream();
  }
  if (declared) {
    declared = bind();
  }
  std::lock_guard<std::mutex> guard{mutex_};
  if (!thread_.joinable() && !conn_.closed()) {
    thread_ = std::thread{[this] { loop(); }};
  }
  return declared;
}

expected<void> lost_task_watch::settle(std::uint64_t token) {
  std::uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = unacked_.find(token);
    if (i == unacked_.end()) {
      return {};
    }
    sequence = i->second.task_sequence;
  }
  // The task first: acked before, the advisory would be gone while the task
  // stays in the stream with nothing left to remove it.
  if (auto ok = discard(sequence); !ok) {
    return ok;
  }
  if (auto held = take(token)) {
    ack(*held);
  }
  return {};
}

void lost_task_watch::pass(std::uint64_t token) {
  if (auto held = take(token)) {
    ack(*held);
  }
}

expected<void> lost_task_watch::discard(std::uint64_t stream_sequence) {
  auto stream = conn_.names().task_stream();
  auto jo = conn_.api_options();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_DeleteMsg(conn_.js(), stream.c_str(), stream_sequence, &jo, &jerr);
  if (s == NATS_OK) {
    return {};
  }
  // Deleting a message that is already gone is reported as a generic delete
  // failure; look it up to tell the two apart.
  natsMsg* raw = nullptr;
  jsErrCode get_err = static_cast<jsErrCode>(0);
  auto g = js_GetMsg(&raw, conn_.js(), stream.c_str(), stream_sequence, &jo, &get_err);
  message_ptr still_there{raw};
  if (g != NATS_OK && get_err == JSNoMessageFoundErr) {
    return {};
  }
  return conn_.api_error("cannot delete message " + std::to_string(stream_sequence) + " of " + stream, s, jerr);
}

void lost_task_watch::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    t = std::move(thread_);
  }
  join_unless_self(t);
}

void lost_task_watch::clear() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    unacked_.clear();
  }
  std::lock_guard<std::mutex> guard{binding_mutex_};
  binding_.reset();
}

}  // namespace trellis::detail
