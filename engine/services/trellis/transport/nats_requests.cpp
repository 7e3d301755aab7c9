#include "trellis/transport/nats_requests.hpp"

#include "trellis/clock.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/signing.hpp"
#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_messages.hpp"

#include <algorithm>
#include <thread>
#include <utility>

namespace trellis::detail {

namespace {

using std::chrono::milliseconds;

// How long a submission request waits for its answer before it is sent
// again, doubling up to the second value (see submission_channel::request).
constexpr milliseconds first_submission_wait{1000};
constexpr milliseconds max_submission_wait{8000};
// Control requests received and not answered yet that a process remembers
// the reply subject of; beyond this the oldest are forgotten.
constexpr std::size_t max_open_control_requests = 10'000;

/// Publishes `reply` on the reply subject remembered under `token` in
/// `replies` (guarded by `mutex`) and forgets it. Unknown tokens (answered
/// already, or notices without a reply subject) are ignored; a failure is
/// remembered for `last_error`.
template <class Replies>
void answer_request(nats_connection& conn, std::mutex& mutex, Replies& replies, std::uint64_t token,
                    const std::string& reply, const char* what, const std::string* upload = nullptr) {
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
  natsStatus s = NATS_OK;
  if (upload == nullptr) {
    s = natsConnection_Publish(conn.get(), subject.c_str(), reply.data(), static_cast<int>(reply.size()));
  } else {
    // A stub: the requester reads the pieces and removes them.
    message_ptr msg;
    s = make_message(msg, subject, reply, nullptr, upload);
    if (s == NATS_OK) {
      s = natsConnection_PublishMsg(conn.get(), msg.get());
    }
  }
  if (s != NATS_OK) {
    conn.remember(conn.broker_error(std::string{"cannot answer "} + what, s));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Submissions.

void submission_channel::on_submission(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  message_ptr owned{msg};
  auto* self = static_cast<submission_channel*>(closure);
  const char* reply = natsMsg_GetReply(msg);
  if (reply == nullptr || *reply == '\0') {
    // Nobody could be told the outcome; a client always sends a request.
    self->conn_.remember(error{errc::malformed_envelope,
                               "submission without a reply subject on " + std::string{natsMsg_GetSubject(msg)}});
    return;
  }
  // Refused here with the reason, in the dispatcher's error shape, and
  // never handed to the dispatcher.
  auto refuse = [&](const error& why) {
    value::map err{{"type", std::string{to_string(why.code())}}, {"message", why.message()}};
    auto answer = pack_to_string(value(value::map{{"error", std::move(err)}}));
    natsConnection_Publish(self->conn_.get(), reply, answer.data(), static_cast<int>(answer.size()));
  };
  std::string bytes;
  if (auto stub = self->uploads_.body_of(msg)) {
    // Larger than one message: read from its pieces. A copy sent again
    // after its answer may find them removed; its client took the first
    // answer and no longer listens.
    if (!*stub) {
      refuse(stub->error());
      return;
    }
    bytes = std::move(**stub);
  } else {
    bytes.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  }
  if (auto refused = refusal_of(self->conn_.cfg().security.signer.get(), msg, &bytes)) {
    refuse(*refused);  // unsigned or badly signed
    return;
  }
  std::lock_guard<std::mutex> guard{self->mutex_};
  auto token = self->next_token_++;
  self->replies_.emplace(token, reply);
  if (self->sink_) {
    self->sink_(delivery{std::move(bytes), token, 1});
  }
}

void submission_channel::consume(std::function<void(delivery)> sink) {
  std::lock_guard<std::mutex> guard{mutex_};
  sink_ = std::move(sink);
  if (sub_) {
    return;
  }
  auto subject = conn_.names().submit(conn_.cfg().partition);
  if (!subject) {
    conn_.remember(subject.error());
    return;
  }
  natsSubscription* sub = nullptr;
  // A queue group, so that a second dispatcher of the same partition (a
  // standby) never commits the same submission twice.
  if (auto s = natsConnection_QueueSubscribe(&sub, conn_.get(), subject->c_str(), "dispatchers",
                                             &submission_channel::on_submission, this);
      s != NATS_OK) {
    conn_.remember(conn_.broker_error("cannot subscribe to " + *subject, s));
    return;
  }
  sub_.reset(sub);
  if (auto s = natsConnection_FlushTimeout(conn_.get(), conn_.cfg().api_timeout.count()); s != NATS_OK) {
    conn_.remember(conn_.broker_error("cannot confirm the subscription to " + *subject, s));
  }
}

void submission_channel::answer(const delivery& d, const std::string& reply) {
  // On failure the client times out and may send the same submission
  // again, which the dispatcher recognizes by its workflow id.
  answer_request(conn_, mutex_, replies_, d.token, reply, "a submission");
}

expected<std::string> submission_channel::request(const std::string& bytes, std::chrono::milliseconds timeout,
                                                  std::optional<int> partition) {
  auto subject = conn_.names().submit(partition.value_or(conn_.cfg().partition));
  if (!subject) {
    return subject.error();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Larger than one message: stored in pieces first, sent as a stub, and
  // the pieces removed however the request ends.
  std::optional<std::string> upload;
  if (uploads_.too_large(bytes.size())) {
    auto put = uploads_.put(bytes);
    if (!put) {
      return error{put.error().code(), "cannot send a submission of " + std::to_string(bytes.size()) + " bytes to " +
                                           *subject + ": " + put.error().message()};
    }
    upload = std::move(*put);
  }
  struct pieces_removal {
    upload_store& uploads;
    const std::optional<std::string>& header;
    ~pieces_removal() {
      if (header) {
        uploads.remove(*header);
      }
    }
  } removal{uploads_, upload};
  // A request whose answer does not come is sent again, with the same
  // workflow id, after a wait that doubles: the answer may be lost (the
  // dispatcher committed and died, or restarted) or still to come (a large
  // submission being committed). The dispatcher answers a repeated id with
  // that id and submits nothing, so the first answer to any copy is right.
  backoff attempt_waits{first_submission_wait, max_submission_wait};
  bool answered_none = false;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (answered_none) {
        return error{errc::timeout, "the dispatcher on " + *subject + " did not answer within " +
                                        std::to_string(timeout.count()) + " ms"};
      }
      return error{errc::broker_unavailable,
                   "no dispatcher answered on " + *subject + " within " + std::to_string(timeout.count()) + " ms"};
    }
    left = std::min(left, attempt_waits.peek());
    natsMsg* raw = nullptr;
    auto s = send_request(&raw, *subject, bytes, upload ? &*upload : nullptr, left);
    message_ptr reply{raw};
    if (s == NATS_OK) {
      return std::string(natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get())));
    }
    if (s == NATS_TIMEOUT) {
      answered_none = true;
      attempt_waits.next();
      continue;
    }
    if (s != NATS_NO_RESPONDERS) {
      return conn_.broker_error("cannot send a submission to " + *subject, s);
    }
    // No dispatcher yet (starting or restarting): pace the retry; the
    // dispatcher's subscription is the condition.
    std::this_thread::sleep_for(std::min(left, milliseconds{100}));
  }
}

natsStatus submission_channel::send_request(natsMsg** reply, const std::string& subject, const std::string& bytes,
                                            const std::string* upload, std::chrono::milliseconds wait) {
  const auto* signer = conn_.cfg().security.signer.get();
  if (signer == nullptr && upload == nullptr) {
    return natsConnection_Request(reply, conn_.get(), subject.c_str(), bytes.data(), static_cast<int>(bytes.size()),
                                  wait.count());
  }
  message_ptr request;
  auto s = make_message(request, subject, bytes, signer, upload);
  if (s == NATS_OK) {
    s = natsConnection_RequestMsg(reply, conn_.get(), request.get(), wait.count());
  }
  return s;
}

void submission_channel::drain() { drain_subscription(sub_, conn_.cfg().api_timeout); }

void submission_channel::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  sub_.reset();
}

// ---------------------------------------------------------------------------
// Control.

void control_channel::on_control(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  message_ptr owned{msg};
  auto* w = static_cast<control_watch*>(closure);
  std::uint64_t token = 0;
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr && *reply != '\0') {
    std::lock_guard<std::mutex> guard{w->self->mutex_};
    token = w->self->next_token_++;
    w->self->replies_.emplace(token, reply);
    // A request whose answer never comes (its dispatcher died) must not
    // pin memory forever; its client has long timed out.
    while (w->self->replies_.size() > max_open_control_requests) {
      w->self->replies_.erase(w->self->replies_.begin());
    }
  }
  w->sink(delivery{std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))), token, 1});
}

/// Subscribes `receiver` to `subject`, in `queue_group` unless it is
/// empty, and waits until the server knows the subscription.
expected<void> control_channel::subscribe(const std::string& subject, const std::string& queue_group,
                                          std::function<void(delivery)> receiver) {
  auto w = std::make_unique<control_watch>();
  w->self = this;
  w->sink = std::move(receiver);
  natsSubscription* sub = nullptr;
  auto s = queue_group.empty()
               ? natsConnection_Subscribe(&sub, conn_.get(), subject.c_str(), &control_channel::on_control, w.get())
               : natsConnection_QueueSubscribe(&sub, conn_.get(), subject.c_str(), queue_group.c_str(),
                                               &control_channel::on_control, w.get());
  if (s != NATS_OK) {
    return conn_.broker_error("cannot subscribe to " + subject, s);
  }
  w->sub.reset(sub);
  {
    std::lock_guard<std::mutex> guard{mutex_};
    watches_.push_back(std::move(w));
  }
  if (auto f = natsConnection_FlushTimeout(conn_.get(), conn_.cfg().api_timeout.count()); f != NATS_OK) {
    return conn_.broker_error("cannot confirm the subscription to " + subject, f);
  }
  return {};
}

void control_channel::consume(std::function<void(delivery)> sink) {
  {
    std::lock_guard<std::mutex> guard{sink_mutex_};
    dispatcher_sink_ = std::move(sink);
  }
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (dispatcher_subscribed_) {
      return;
    }
    dispatcher_subscribed_ = true;
  }
  auto forward = [this](delivery d) {
    std::function<void(delivery)> deliver;
    {
      std::lock_guard<std::mutex> guard{sink_mutex_};
      deliver = dispatcher_sink_;
    }
    if (deliver) {
      deliver(std::move(d));
    }
  };
  auto partition_subject = conn_.names().partition_control(conn_.cfg().partition);
  if (!partition_subject) {
    conn_.remember(partition_subject.error());
    return;
  }
  // A queue group, as for submissions: one dispatcher of the partition
  // answers (and revokes) once. Inspect goes to every process.
  if (auto ok = subscribe(*partition_subject, "dispatchers", forward); !ok) {
    conn_.remember(ok.error());
  }
  auto inspect_subject = conn_.names().control("inspect");
  if (auto ok = subscribe(*inspect_subject, "", forward); !ok) {
    conn_.remember(ok.error());
  }
}

void control_channel::answer(const delivery& d, const std::string& reply) {
  // On failure the client times out and reports it; a control request
  // changes nothing twice (status reads, revoke of a finished workflow refuses).
  if (!uploads_.too_large(reply.size())) {
    answer_request(conn_, mutex_, replies_, d.token, reply, "a control request");
    return;
  }
  // Larger than one message (a status with a large result): in pieces,
  // which the requester removes once read.
  auto put = uploads_.put(reply);
  if (!put) {
    answer_request(conn_, mutex_, replies_, d.token, encode_control_error(put.error()), "a control request");
    return;
  }
  answer_request(conn_, mutex_, replies_, d.token, reply, "a control request", &*put);
}

expected<void> control_channel::serve(const std::string& verb, std::function<void(delivery)> sink) {
  auto subject = conn_.names().control(verb);
  if (!subject) {
    return subject.error();
  }
  return subscribe(*subject, "", std::move(sink));
}

expected<std::string> control_channel::request(const std::string& verb, int partition, const std::string& bytes,
                                               std::chrono::milliseconds timeout) {
  auto subject = conn_.names().control(verb, partition);
  if (!subject) {
    return subject.error();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return error{errc::broker_unavailable,
                   "no dispatcher answered on " + *subject + " within " + std::to_string(timeout.count()) + " ms"};
    }
    natsMsg* raw = nullptr;
    auto s = natsConnection_Request(&raw, conn_.get(), subject->c_str(), bytes.data(), static_cast<int>(bytes.size()),
                                    left.count());
    message_ptr reply{raw};
    if (s == NATS_OK) {
      if (auto stub = uploads_.body_of(reply.get())) {
        if (auto header = upload_store::header_of(reply.get())) {
          uploads_.remove(*header);
        }
        return *stub;
      }
      return std::string(natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get())));
    }
    if (s == NATS_TIMEOUT) {
      return error{errc::timeout, "the dispatcher on " + *subject + " did not answer within " +
                                      std::to_string(timeout.count()) + " ms"};
    }
    if (s != NATS_NO_RESPONDERS) {
      return conn_.broker_error("cannot send a control request to " + *subject, s);
    }
    // No dispatcher for this partition yet (starting or restarting): pace.
    std::this_thread::sleep_for(std::min(left, milliseconds{100}));
  }
}

expected<std::vector<std::string>> control_channel::gather(const std::string& verb, const std::string& bytes,
                                                           std::chrono::milliseconds window) {
  auto subject = conn_.names().control(verb);
  if (!subject) {
    return subject.error();
  }
  natsInbox* raw_inbox = nullptr;
  if (auto s = natsInbox_Create(&raw_inbox); s != NATS_OK) {
    return conn_.broker_error("cannot create a reply inbox", s);
  }
  std::unique_ptr<natsInbox, void (*)(natsInbox*)> inbox{raw_inbox, natsInbox_Destroy};
  natsSubscription* raw_sub = nullptr;
  if (auto s = natsConnection_SubscribeSync(&raw_sub, conn_.get(), inbox.get()); s != NATS_OK) {
    return conn_.broker_error("cannot subscribe to a reply inbox", s);
  }
  subscription_ptr sub{raw_sub};
  // Every process answers once; none is waited for by name, so the window
  // is the only bound (a slow or absent process is simply not listed).
  if (auto s = natsConnection_PublishRequest(conn_.get(), subject->c_str(), inbox.get(), bytes.data(),
                                             static_cast<int>(bytes.size()));
      s != NATS_OK) {
    return conn_.broker_error("cannot publish on " + *subject, s);
  }
  natsConnection_FlushTimeout(conn_.get(), std::max<std::int64_t>(1, window.count()));
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
      return conn_.broker_error("cannot read the answers on " + *subject, s);
    }
    replies.emplace_back(natsMsg_GetData(m.get()), static_cast<std::size_t>(natsMsg_GetDataLength(m.get())));
  }
  natsSubscription_Unsubscribe(sub.get());
  return replies;
}

void control_channel::drain() {
  for (auto& w : watches_) {
    drain_subscription(w->sub, conn_.cfg().api_timeout);
  }
}

void control_channel::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  watches_.clear();
}

}  // namespace trellis::detail
