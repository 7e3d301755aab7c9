#include "trellis/transport/nats_publishing.hpp"

#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/pack_codec.hpp"

#include <algorithm>
#include <climits>
#include <map>
#include <optional>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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

}  // namespace

// ---------------------------------------------------------------------------
// Async publishing.

struct publisher_pool::publisher {
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
void publisher_pool::on_publish_error(jsCtx*, jsPubAckErr* pae, void* closure) {
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

publisher_pool::publisher_pool(nats_connection& conn, upload_store& uploads) : conn_(conn), uploads_(uploads) {}

publisher_pool::~publisher_pool() = default;

void publisher_pool::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  idle_.clear();
  publishers_.clear();
}

expected<publisher_pool::publisher*> publisher_pool::acquire() {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!idle_.empty()) {
    auto* p = idle_.back();
    idle_.pop_back();
    return p;
  }
  auto p = std::make_unique<publisher>();
  jsOptions jo = conn_.api_options();
  jo.PublishAsync.MaxPending = conn_.cfg().max_pending_publishes;
  // Waiting for room under MaxPending counts against the same bound as
  // waiting for PubAcks: past it the broker is not keeping up.
  jo.PublishAsync.StallWait = conn_.cfg().publish_timeout.count();
  jo.PublishAsync.ErrHandler = on_publish_error;
  jo.PublishAsync.ErrHandlerClosure = p.get();
  jsCtx* ctx = nullptr;
  if (auto s = natsConnection_JetStream(&ctx, conn_.get(), &jo); s != NATS_OK) {
    return conn_.broker_error("cannot open a JetStream publishing context", s);
  }
  p->ctx.reset(ctx);
  publishers_.push_back(std::move(p));
  return publishers_.back().get();
}

void publisher_pool::release(publisher* p) {
  std::lock_guard<std::mutex> guard{mutex_};
  idle_.push_back(p);
}

expected<void> publisher_pool::publish(const std::string& subject, const std::vector<outgoing>& items,
                                       const std::string& what) {
  if (items.empty()) {
    return {};
  }
  auto leased = acquire();
  if (!leased) {
    return leased.error();
  }
  auto* p = *leased;
  struct publisher_lease {
    publisher_pool* self;
    publisher* p;
    ~publisher_lease() { self->release(p); }
  } lease{this, p};
  p->reset();
  auto deadline = clock::now() + conn_.cfg().publish_timeout;

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
    // Larger than one message (never a pack: packs stay far below): its
    // pieces first, then a stub in its place. A stub published again is
    // dropped by its id like any message; its second upload is left to the
    // uploads stream's MaxAge.
    std::optional<std::string> stub;
    if (item.pack_count == nullptr && uploads_.too_large(item.bytes->size())) {
      auto put = uploads_.put(*item.bytes);
      if (!put) {
        failed = error{put.error().code(), "cannot publish " + what + " to " + subject + ": " + put.error().message()};
        break;
      }
      stub = std::move(*put);
    }
    auto s = publish_one_async(p->ctx.get(), subject, *item.bytes, conn_.cfg().security.signer.get(), item.pack_header,
                               item.pack_count, &po, stub ? &*stub : nullptr);
    if (s != NATS_OK) {
      auto id = item.id != nullptr ? " (message id " + *item.id + ")" : std::string{};
      failed = conn_.broker_error("cannot publish " + what + id + " to " + subject, s);
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
      failed =
          error{errc::broker_unavailable,
                conn_.mask(std::to_string(unconfirmed) + " of " + std::to_string(sent) + " " + what + " on " + subject +
                           " not confirmed by JetStream within " + std::to_string(conn_.cfg().publish_timeout.count()) +
                           " ms (" + status_text(s) + "); nothing is lost, the caller publishes them again")};
    }
  }
  if (failed) {
    return *failed;
  }
  std::lock_guard<std::mutex> guard{p->mutex};
  if (p->failures > 0) {
    return error{errc::broker_unavailable,
                 conn_.mask(std::to_string(p->failures) + " of " + std::to_string(sent) + " " + what + " on " +
                            subject + " refused by JetStream: " + p->first_failure)};
  }
  return {};
}

expected<void> publisher_pool::publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) {
  // Each task name has its subject (decision 0022): the call is split by
  // task, keeping the order within each part; usually there is one part.
  // On a failure the caller keeps every message and publishes them all
  // again: parts already out are dropped by the broker's dedup window, since
  // the same list splits into the same parts, packed under the same ids.
  std::vector<std::vector<const outgoing_task*>> parts;
  std::map<std::string_view, std::size_t> part_of;
  for (const auto& m : messages) {
    auto [at, added] = part_of.try_emplace(m.task, parts.size());
    if (added) {
      parts.emplace_back();
    }
    parts[at->second].push_back(&m);
  }
  for (const auto& part : parts) {
    if (auto ok = publish_task_list(queue, part); !ok) {
      return ok;
    }
  }
  messages.clear();
  return {};
}

expected<void> publisher_pool::publish_task_list(const std::string& queue,
                                                 const std::vector<const outgoing_task*>& messages) {
  auto subject = conn_.names().task(queue, messages.front()->task);
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
                                          static_cast<std::size_t>(std::max(1, conn_.cfg().task_pack_max)));
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
    std::size_t bytes = pack_frame_header + messages[first]->bytes.size();
    while (!messages[first]->republished && last < n && last - first < per_pack && !messages[last]->republished &&
           bytes + pack_frame_header + messages[last]->bytes.size() <= max_event_pack_bytes) {
      bytes += pack_frame_header + messages[last]->bytes.size();
      ++last;
    }
    if (last - first == 1) {
      items.push_back(outgoing{&messages[first]->bytes, &messages[first]->id});
    } else {
      packs.push_back(pack_frames(first, last, [&](std::size_t i) -> const std::string& { return messages[i]->bytes; }));
      counts.push_back(std::to_string(last - first));
      ids.push_back(messages[first]->id + "+" + counts.back());
      items.push_back(outgoing{&packs.back(), &ids.back(), &counts.back(), task_pack_header});
    }
    first = last;
  }
  return publish(*subject, items, "task messages for queue '" + queue + "'");
}

expected<void> publisher_pool::publish_events(std::vector<outgoing_event> messages) {
  // Grouped by partition, keeping the order within each: usually one group.
  std::map<int, std::vector<std::string>> by_partition;
  for (auto& m : messages) {
    by_partition[m.partition].push_back(std::move(m.bytes));
  }
  for (const auto& [partition, events] : by_partition) {
    auto subject = conn_.names().event(partition);
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
    if (auto ok = publish(*subject, items, "outcome events for partition " + std::to_string(partition)); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace trellis::detail
