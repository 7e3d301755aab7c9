// Retention (docs/operations.md "Retention", decision 0036): the dispatcher,
// the store's only writer, deletes expired rows itself. A timer message
// sweeps one bounded batch (at most `retention_batch` workflows, and as many
// idempotency keys and dead letters) into the open transaction, so a sweep
// never holds the dispatcher longer than a batch of outcomes does; after a
// full batch the next sweep is queued at once, behind whatever arrived
// meanwhile. `prune` and `forget` are the same deletes by hand.
//
// A workflow is deleted only when the store says it finished and the
// dispatcher holds no graph of it (cached or evicted): a dead-letter replay
// reopens a workflow, and one in the cache may be about to change.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/control_messages.hpp"

#include <algorithm>

namespace trellis::detail {

namespace {

/// `now - expires`, or the earliest time when `expires` reaches back past
/// the epoch (a clock set to the past): nothing stored is older than that.
epoch_ms cutoff(epoch_ms now, std::chrono::milliseconds expires) {
  return std::max<epoch_ms>(0, now - static_cast<epoch_ms>(expires.count()));
}

/// Whether a failed delete says something about the workflow (gone, or not
/// finished) rather than about the store.
bool refused_for_the_workflow(const error& e) {
  return e.code() == errc::not_found || e.code() == errc::invalid_workflow;
}

}  // namespace

void dispatcher_logic::schedule_expiry(std::chrono::milliseconds delay) {
  const auto& c = st_.cfg;
  if (c.result_expires.count() == 0 && c.idempotency_key_expires.count() == 0 && c.dead_letter_expires.count() == 0) {
    return;  // everything is kept forever: no timer at all
  }
  if (delay.count() == 0) {
    self_->send(self_, expire_atom::value);
  } else {
    self_->delayed_send(self_, delay, expire_atom::value);
  }
}

void dispatcher_logic::expire() {
  const auto& c = st_.cfg;
  const auto now = now_ms();
  const std::size_t batch = std::max<std::size_t>(1, c.retention_batch);
  bool full = false;
  std::size_t rows = 0;
  if (c.result_expires.count() > 0) {
    auto ids = check(c.store->expired_workflows(cutoff(now, c.result_expires), batch));
    full = ids.size() == batch;
    for (const auto& id : ids) {
      if (st_.active.count(id) != 0 || st_.evicted.count(id) != 0) {
        continue;  // the dispatcher holds it: not finished for good
      }
      open_batch();
      auto deleted = c.store->delete_workflow(id);
      if (!deleted && refused_for_the_workflow(deleted.error())) {
        continue;
      }
      rows += check(std::move(deleted));
    }
  }
  if (c.idempotency_key_expires.count() > 0) {
    open_batch();
    auto n = check(c.store->prune_idempotency_keys(cutoff(now, c.idempotency_key_expires), batch));
    full = full || n == batch;
    rows += n;
  }
  if (c.dead_letter_expires.count() > 0) {
    open_batch();
    auto n = check(c.store->prune_dead_letters(cutoff(now, c.dead_letter_expires), batch));
    full = full || n == batch;
    rows += n;
  }
  if (rows > 0) {
    st_.rows_pruned += rows;
    c.stats->add(counter::rows_pruned, "", "", rows);
    changed(rows);
  }
  // A full batch means more may be waiting: sweep again at once, behind
  // the messages already queued, so the work interleaves with theirs.
  schedule_expiry(full ? std::chrono::milliseconds{0} : c.retention_sweep_interval);
}

caf::result<std::int64_t> dispatcher_logic::prune(std::int64_t older_than_ms) {
  if (older_than_ms < 0 || older_than_ms > defaults::max_expires.count()) {
    return to_caf_error(error{errc::invalid_config, "prune: older-than must be from 0 to " +
                                                        std::to_string(defaults::max_expires.count()) +
                                                        " ms, got " + std::to_string(older_than_ms)});
  }
  const auto& c = st_.cfg;
  const auto before = cutoff(now_ms(), std::chrono::milliseconds{older_than_ms});
  const std::size_t batch = std::max<std::size_t>(1, c.retention_batch);
  std::int64_t workflows = 0;
  for (;;) {
    auto ids = check(c.store->expired_workflows(before, batch));
    std::size_t removed = 0;
    std::size_t rows = 0;
    for (const auto& id : ids) {
      if (st_.active.count(id) != 0 || st_.evicted.count(id) != 0) {
        continue;
      }
      open_batch();
      auto deleted = c.store->delete_workflow(id);
      if (!deleted && refused_for_the_workflow(deleted.error())) {
        continue;
      }
      rows += check(std::move(deleted));
      ++removed;
    }
    if (rows > 0) {
      st_.rows_pruned += rows;
      c.stats->add(counter::rows_pruned, "", "", rows);
      changed(rows);
    }
    // One transaction per batch, committed before the next is read: the
    // answer counts only what is durable.
    flush();
    workflows += static_cast<std::int64_t>(removed);
    if (ids.size() < batch || removed == 0) {
      return workflows;
    }
  }
}

caf::result<std::string> dispatcher_logic::forget(const std::string& wf) {
  if (st_.active.count(wf) != 0 || st_.evicted.count(wf) != 0) {
    return to_caf_error(error{errc::invalid_workflow,
                              "workflow " + wf + " is not finished; only a finished workflow can be forgotten"});
  }
  open_batch();
  auto deleted = st_.cfg.store->delete_workflow(wf);
  if (!deleted && refused_for_the_workflow(deleted.error())) {
    return to_caf_error(deleted.error());  // the empty batch commits with the next flush
  }
  auto rows = check(std::move(deleted));
  st_.rows_pruned += rows;
  st_.cfg.stats->add(counter::rows_pruned, "", "", rows);
  changed(rows);
  // Answered after the commit, like a submission: "forgotten" must be durable.
  auto promise = self_->make_response_promise<std::string>();
  st_.replies.push_back(pending_reply{promise, wf, 0, st_.control_token});
  return promise;
}

void dispatcher_logic::control_prune(std::int64_t older_than_ms, std::uint64_t token) {
  // The decoder checked the range. `prune` commits before it returns, so
  // the answer can go at once.
  auto r = prune(older_than_ms);
  std::string reply;
  if (r.flag == caf::rt_error) {
    reply = encode_control_error(from_caf_error(r.err, to_string(r.err)));
  } else {
    auto pruned = r.value.match_elements<std::int64_t>() ? r.value.get_as<std::int64_t>(0) : std::int64_t{0};
    reply = encode_control_reply(value(value::map{{"pruned", pruned}}));
  }
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
}

void dispatcher_logic::control_forget(const std::string& wf, std::uint64_t token) {
  st_.control_token = token;  // picked up by forget() for its answer after the commit
  auto r = forget(wf);
  st_.control_token = 0;
  if (r.flag == caf::rt_error) {
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_error(from_caf_error(r.err, to_string(r.err))));
  }
}

}  // namespace trellis::detail
