#include "trellis/transport/nats_notices.hpp"

#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_messages.hpp"
#include "trellis/transport/nats_publishing.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <utility>

namespace trellis::detail {

namespace {

// The revoked stream keeps as many notices as a worker remembers
// (worker_activity), for as long as the lost stream keeps advisories.
constexpr const char* revoked_verb = "revoked";
constexpr std::int64_t revocations_kept = 10'000;
constexpr std::chrono::hours revocation_max_age{24 * 7};

}  // namespace

// ---------------------------------------------------------------------------
// Done notices.

void done_channel::on_done(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  message_ptr owned{msg};
  auto* w = static_cast<done_watch*>(closure);
  w->sink(std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
}

expected<void> done_channel::publish(const std::string& workflow_id, const std::string& bytes) {
  auto subject = conn_.names().done(workflow_id);
  if (!subject) {
    return subject.error();
  }
  auto s = natsConnection_Publish(conn_.get(), subject->c_str(), bytes.data(), static_cast<int>(bytes.size()));
  if (s != NATS_OK) {
    return conn_.broker_error("cannot publish on " + *subject, s);
  }
  return {};
}

expected<void> done_channel::watch(const std::string& workflow_id, std::function<void(std::string)> sink) {
  auto subject = conn_.names().done(workflow_id);
  if (!subject) {
    return subject.error();
  }
  auto w = std::make_unique<done_watch>();
  w->workflow_id = workflow_id;
  w->sink = std::move(sink);
  natsSubscription* sub = nullptr;
  if (auto s = natsConnection_Subscribe(&sub, conn_.get(), subject->c_str(), &done_channel::on_done, w.get());
      s != NATS_OK) {
    return conn_.broker_error("cannot subscribe to " + *subject, s);
  }
  w->sub.reset(sub);
  {
    std::lock_guard<std::mutex> guard{mutex_};
    watches_.push_back(std::move(w));
  }
  if (auto s = natsConnection_FlushTimeout(conn_.get(), conn_.cfg().api_timeout.count()); s != NATS_OK) {
    return conn_.broker_error("cannot confirm the subscription to " + *subject, s);
  }
  return {};
}
void done_channel::unwatch(const std::string& workflow_id) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (auto& w : watches_) {
    if (!w->ended && w->workflow_id == workflow_id) {
      // Closes the subscription; nats.c ends its delivery thread once a
      // running callback returns. A failure (connection closed) leaves
      // nothing to end.
      natsSubscription_Unsubscribe(w->sub.get());
      w->ended = true;
    }
  }
}

void done_channel::drain() {
  for (auto& w : watches_) {
    if (!w->ended) {
      drain_subscription(w->sub, conn_.cfg().api_timeout);
    }
  }
}

void done_channel::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  watches_.clear();
}

void lifecycle_channel::publish(const std::vector<lifecycle_event>& events) {
  if (events.empty()) {
    return;
  }
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> guard{queue_mutex_};
    if (stopping_) {
      return;
    }
    was_empty = queued_.empty();
    auto room = max_queued - std::min(max_queued, queued_.size());
    queued_.insert(queued_.end(), events.begin(),
                   events.begin() + static_cast<std::ptrdiff_t>(std::min(room, events.size())));
    if (!flusher_.joinable()) {
      flusher_ = std::thread{[this] { flush_loop(); }};
    }
  }
  if (was_empty) {
    queue_stop_.notify_all();
  }
}

void lifecycle_channel::flush_loop() {
  std::vector<lifecycle_event> batch;
  for (;;) {
    bool last = false;
    {
      std::unique_lock<std::mutex> lock{queue_mutex_};
      // Asleep while there is nothing to say; then a short wait gathers
      // what else is announced into the same message.
      queue_stop_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
      queue_stop_.wait_for(lock, flush_interval, [this] { return stopping_; });
      batch.swap(queued_);
      last = stopping_;
    }
    if (!batch.empty()) {
      publish_range(batch, 0, batch.size());
      batch.clear();
    }
    if (last) {
      return;
    }
  }
}

void lifecycle_channel::publish_range(const std::vector<lifecycle_event>& events, std::size_t begin,
                                      std::size_t end) {
  std::vector<lifecycle_event> part(events.begin() + static_cast<std::ptrdiff_t>(begin),
                                    events.begin() + static_cast<std::ptrdiff_t>(end));
  auto bytes = encode_lifecycle_batch(part);
  if (bytes.size() > conn_.max_message_bytes() && end - begin > 1) {
    // Halves until each fits; one event always fits (its error text is
    // bounded by the envelope's).
    auto middle = begin + (end - begin) / 2;
    publish_range(events, begin, middle);
    publish_range(events, middle, end);
    return;
  }
  auto subject = conn_.names().lifecycle();
  // Best effort: a monitor that misses a notice reads the state instead.
  (void)natsConnection_Publish(conn_.get(), subject.c_str(), bytes.data(), static_cast<int>(bytes.size()));
}

void lifecycle_channel::on_batch(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  message_ptr owned{msg};
  auto* self = static_cast<lifecycle_channel*>(closure);
  std::function<void(std::string)> sink;
  {
    std::lock_guard<std::mutex> guard{self->mutex_};
    sink = self->sink_;
  }
  if (sink) {
    sink(std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
  }
}

expected<void> lifecycle_channel::watch(std::function<void(std::string)> sink) {
  std::lock_guard<std::mutex> guard{mutex_};
  sink_ = std::move(sink);
  if (sub_) {
    return {};
  }
  auto subject = conn_.names().lifecycle();
  natsSubscription* sub = nullptr;
  if (auto s = natsConnection_Subscribe(&sub, conn_.get(), subject.c_str(), &lifecycle_channel::on_batch, this);
      s != NATS_OK) {
    return conn_.broker_error("cannot subscribe to " + subject, s);
  }
  sub_.reset(sub);
  if (auto s = natsConnection_FlushTimeout(conn_.get(), conn_.cfg().api_timeout.count()); s != NATS_OK) {
    return conn_.broker_error("cannot confirm the subscription to " + subject, s);
  }
  return {};
}

void lifecycle_channel::drain() {
  {
    std::lock_guard<std::mutex> guard{queue_mutex_};
    stopping_ = true;
  }
  queue_stop_.notify_all();
  if (flusher_.joinable()) {
    flusher_.join();  // it publishes what was queued before it ends
  }
  if (sub_) {
    drain_subscription(sub_, conn_.cfg().api_timeout);
  }
}

void lifecycle_channel::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  sub_.reset();
}

// ---------------------------------------------------------------------------
// Revoke notices (kept in the revoked stream).

expected<void> revocation_channel::declare_stream() {
  auto name = conn_.names().revoked_stream();
  auto subject = conn_.names().control(revoked_verb);
  if (!subject) {
    return subject.error();
  }
  const char* subjects[] = {subject->c_str()};
  jsStreamConfig sc;
  conn_.init_stream(sc, name, subjects, js_LimitsPolicy);
  sc.Discard = js_DiscardOld;
  sc.MaxMsgs = revocations_kept;
  sc.Duplicates = to_nanos(conn_.cfg().dedup_window);
  sc.MaxAge =
      static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(revocation_max_age).count());
  return conn_.add_or_update_stream(sc, name, *subject);
}

void revocation_channel::on_revocation(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  message_ptr owned{msg};
  auto* w = static_cast<revocation_watch*>(closure);
  if (auto refused = refusal_of(w->conn->cfg().security.signer.get(), msg)) {
    w->conn->remember(error{refused->code(), "revoke notice dropped: " + refused->message()});
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

expected<void> revocation_channel::publish(const std::string& workflow_id, const std::string& bytes) {
  auto subject = conn_.names().control(revoked_verb);
  if (!subject) {
    return subject.error();
  }
  // The same notice sent twice (a retried publish) is stored once; another
  // revocation of the same workflow (other nodes, or terminate) is not the
  // same notice, so its id depends on the bytes too.
  std::ostringstream id_text;
  id_text << "revoked-" << workflow_id << '-' << std::hex << std::hash<std::string>{}(bytes);
  auto id = id_text.str();
  std::vector<outgoing> items{outgoing{&bytes, &id}};
  return publishers_.publish(*subject, items, "the revoke notice of " + workflow_id);
}

expected<void> revocation_channel::watch(std::function<void(std::string)> sink) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (watch_) {
    return error{errc::invalid_config, "watch_revocations: already watching"};
  }
  auto subject = conn_.names().control(revoked_verb);
  if (!subject) {
    return subject.error();
  }
  // What the stream holds now, to read all of it before returning.
  auto jo_info = conn_.api_options();
  jsStreamInfo* raw_info = nullptr;
  jsErrCode info_err = static_cast<jsErrCode>(0);
  auto s_info = js_GetStreamInfo(&raw_info, conn_.js(), conn_.names().revoked_stream().c_str(), &jo_info, &info_err);
  stream_info_ptr info{raw_info};
  if (s_info != NATS_OK) {
    return conn_.api_error("cannot read " + conn_.names().revoked_stream(), s_info, info_err);
  }
  auto kept_up_to = info->State.Msgs == 0 ? std::uint64_t{0} : info->State.LastSeq;
  auto w = std::make_unique<revocation_watch>();
  w->conn = &conn_;
  w->sink = std::move(sink);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = nullptr;
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  auto jo = conn_.api_options();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s =
      js_Subscribe(&sub, conn_.js(), subject->c_str(), &revocation_channel::on_revocation, w.get(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    return conn_.api_error("cannot read " + conn_.names().revoked_stream(), s, jerr);
  }
  w->sub.reset(sub);
  // Caught up before returning: a worker starts its handlers after this, so
  // none of them runs a task of a workflow revoked before it started.
  std::unique_lock<std::mutex> lock{w->mutex};
  bool caught_up = w->advanced.wait_for(lock, conn_.cfg().api_timeout, [&] { return w->read_up_to >= kept_up_to; });
  auto read = w->read_up_to;
  lock.unlock();
  watch_ = std::move(w);
  if (!caught_up) {
    return error{errc::broker_unavailable, "read the revoked notices up to sequence " + std::to_string(read) + " of " +
                                               std::to_string(kept_up_to) + " in " + conn_.names().revoked_stream() +
                                               " within " + std::to_string(conn_.cfg().api_timeout.count()) + " ms"};
  }
  return {};
}

void revocation_channel::drain() {
  if (watch_) {
    drain_subscription(watch_->sub, conn_.cfg().api_timeout);
  }
}

void revocation_channel::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  watch_.reset();
}

}  // namespace trellis::detail
