// The dispatcher's batches (dispatcher.hpp, "Batching"): the first change
// after a commit opens a transaction, a `flush` message queued behind the
// mailbox commits it, and only then does anything leave the dispatcher: task
// messages are handed to the publisher, events acked, callers answered,
// finished and revoked workflows announced. A store that refuses a read or a
// write stops the dispatcher here (`check`). Kept apart because every other
// part only opens a batch and counts its changes; what is safe to do after a
// commit is decided in one place.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"

#include <algorithm>

namespace trellis::detail {

namespace {

/// A workflow's error {task, node, type, message} as a task event carries
/// it: {type, message}.
value type_and_message(const value& err) {
  auto text = [&](const char* key, const char* otherwise) {
    if (err.is_map()) {
      auto i = err.as_map().find(key);
      if (i != err.as_map().end() && i->second.is_string()) {
        return i->second.as_string();
      }
    }
    return std::string{otherwise};
  };
  return error_value(text("type", "task_failed"), text("message", ""));
}

}  // namespace

void dispatcher_logic::check(const expected<void>& r) {
  if (!r) {
    // A store that cannot write leaves memory ahead of disk: nothing more
    // may be published or acked. The actor stops with the failure as its
    // exit reason (see `stopping_on_store_failure` in dispatcher.cpp).
    throw store_failure{r.error()};
  }
}

void dispatcher_logic::announce(lifecycle_kind kind, const std::string& wf, std::optional<std::int32_t> node,
                                const std::string& task, std::int32_t attempt, value err) {
  if (!st_.cfg.bus->announces_lifecycle()) {
    return;
  }
  st_.lifecycle.push_back(lifecycle_event{kind, wf, node, task, attempt, now_ms(), std::move(err)});
}

void dispatcher_logic::open_batch() {
  if (st_.in_batch) {
    return;
  }
  check(st_.cfg.store->begin());
  st_.in_batch = true;
  st_.batch_changes = 0;
  st_.message_limit = std::min(st_.cfg.bus->max_message_bytes(), max_task_message_bytes(st_.cfg.limits));
  self_->send(self_, flush_atom::value);
}

void dispatcher_logic::changed(std::size_t n) {
  st_.batch_changes += n;
  if (st_.batch_changes >= st_.cfg.max_batch) {
    // Bound the batch: commit now, keep going in a new one. The flush message
    // already queued then finds nothing (or a fresh batch) to commit.
    flush();
    evict_idle(true);
    open_batch();
  }
}

void dispatcher_logic::flush() {
  if (st_.in_batch) {
    check(st_.cfg.store->commit());
    st_.in_batch = false;
    st_.batch_changes = 0;
    // Only now is everything durable: publish, ack, answer, notify.
    for (auto& [queue, messages] : st_.outbox) {
      if (!messages.empty()) {
        st_.unsent[queue].push_back({std::move(messages), false});
      }
    }
    st_.outbox.clear();
    for (auto token : st_.events_to_ack) {
      st_.cfg.bus->ack_event(delivery{{}, token, 1});
    }
    st_.events_to_ack.clear();
    for (auto handle : st_.lost_to_discard) {
      if (st_.cfg.discard_lost_task) {
        st_.cfg.discard_lost_task(handle);
      }
    }
    st_.lost_to_discard.clear();
    for (auto& r : st_.replies) {
      if (r.submission_token != 0) {
        st_.cfg.bus->answer_submission(delivery{{}, r.submission_token, 1},
                                       pack_to_string(value(value::map{{"id", r.workflow_id}})));
      }
      if (r.control_token != 0) {
        st_.cfg.bus->answer_control(delivery{{}, r.control_token, 1},
                                    encode_control_reply(value(value::map{{"id", r.workflow_id}})));
      }
      r.promise.deliver(std::move(r.workflow_id));
    }
    st_.replies.clear();
    auto revoked = std::move(st_.revoked);
    st_.revoked.clear();
    for (const auto& notice : revoked) {
      if (st_.cfg.on_revoked) {
        st_.cfg.on_revoked(notice);
      }
    }
    auto finished = std::move(st_.finished);
    st_.finished.clear();
    for (auto& f : finished) {
      st_.cfg.stats->add(counter::workflows_finished, "", "");
      announce(f.state == node_state::success   ? lifecycle_kind::succeeded
               : f.state == node_state::revoked ? lifecycle_kind::revoked
                                                : lifecycle_kind::failed,
               f.id, std::nullopt, "", 0, f.state == node_state::failure ? type_and_message(f.error) : value{});
      if (st_.cfg.on_finished) {
        st_.cfg.on_finished(f);
      }
    }
    if (!st_.lifecycle.empty()) {
      st_.cfg.bus->announce_lifecycle(st_.lifecycle);
      st_.lifecycle.clear();
    }
    // Last, so that a client told "revoked" knows the workers were told and
    // the done notice is out.
    for (auto& [token, reply] : st_.control_answers) {
      st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
    }
    st_.control_answers.clear();
  }
  publish_unsent();
  // Reads that waited for this commit. Answering one never opens a batch.
  auto deferred = std::move(st_.deferred_controls);
  st_.deferred_controls.clear();
  for (auto& [bytes, token] : deferred) {
    control(bytes, token);
  }
}

}  // namespace trellis::detail
