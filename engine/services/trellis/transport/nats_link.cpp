#include "trellis/transport/nats_link.hpp"

#include <thread>
#include <utility>

namespace trellis::detail {

namespace {

// Tries of the stream and consumer declarations at connect when JetStream
// does not answer in time (each bounded by api_timeout).
constexpr int declare_attempts = 3;

}  // namespace

nats_link::nats_link(nats_config cfg, subject_space names, std::string event_subject)
    : connection(std::move(cfg), std::move(names)),
      uploads(connection),
      publishers(connection, uploads),
      consumers(connection, uploads, std::move(event_subject)),
      events(connection, consumers),
      keepalive(connection, consumers),
      lost_tasks(connection, uploads),
      submissions(connection, uploads),
      control(connection, uploads),
      done(connection),
      lifecycle(connection),
      revocations(connection, publishers),
      rates(connection),
      transport_face(*this),
      bus_face(*this) {}

expected<std::shared_ptr<nats_link>> nats_link::open(nats_config cfg) {
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
  std::shared_ptr<nats_link> link{new nats_link{std::move(cfg), std::move(*names), std::move(*event_subject)}};
  if (auto ok = link->connection.connect(); !ok) {
    return ok.error();
  }
  // A JetStream cluster that is busy or electing a leader can answer an API
  // request after api_timeout, or not at all. Declaring is idempotent, so a
  // request that went unanswered is tried again; a refusal is final.
  for (int attempt = 1;; ++attempt) {
    auto ok = link->declare();
    if (ok) {
      break;
    }
    if (ok.error().code() != errc::broker_unavailable || attempt == declare_attempts) {
      return ok.error();
    }
    // Pacing; the cluster answering is the condition.
    std::this_thread::sleep_for(link->connection.cfg().reconnect_wait);
  }
  return link;
}

expected<void> nats_link::declare() {
  const auto& cfg = connection.cfg();
  const auto& names = connection.names();
  if (cfg.declare_streams) {
    if (auto ok = connection.declare_work_queue_stream(names.task_stream(), names.all_tasks()); !ok) {
      return ok;
    }
    if (auto ok = connection.declare_work_queue_stream(names.event_stream(), names.all_events()); !ok) {
      return ok;
    }
    if (auto ok = revocations.declare_stream(); !ok) {
      return ok;
    }
    if (auto ok = uploads.declare_stream(); !ok) {
      return ok;
    }
  }
  if (auto ok = consumers.declare(); !ok) {
    return ok;
  }
  if (cfg.consume_events) {
    // A dispatcher declares the lost stream before any task of its
    // partition is published, so no advisory fires before it is kept.
    if (cfg.declare_streams) {
      if (auto ok = lost_tasks.declare_stream(); !ok) {
        return ok;
      }
    }
    if (auto ok = lost_tasks.bind(); !ok) {
      return ok;
    }
  }
  return {};
}

void nats_link::close() {
  connection.close();
  consumers.wake_event_waiters();
  events.stop();
  keepalive.stop();
  lost_tasks.stop();
}

nats_link::~nats_link() {
  close();
  // Callbacks of these subscriptions use the parts: let running ones finish
  // before anything goes.
  connection.forget_reconnect_listeners();
  submissions.drain();
  done.drain();
  lifecycle.drain();
  control.drain();
  revocations.drain();
  connection.close_connection();
  // Messages before the subscriptions they point to, contexts before the
  // connection they belong to.
  consumers.forget_deliveries();
  lost_tasks.clear();
  submissions.clear();
  done.clear();
  lifecycle.clear();
  control.clear();
  revocations.clear();
  consumers.clear_bindings();
  publishers.clear();
  rates.clear();
  connection.release();
}

}  // namespace trellis::detail
