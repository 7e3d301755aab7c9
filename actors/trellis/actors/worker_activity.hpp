#pragma once

/// @file
/// What a worker process is doing right now, for `inspect`, and which
/// workflows and tasks it was told are revoked, so that its handler threads
/// skip their queued messages and, for a revoke with terminate, stop the
/// handlers running them (docs/canvas.md "Revoking").
///
/// Thread-safe: handler threads write it, NATS callback threads read it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace trellis::detail {

/// One task a handler thread is running.
struct active_task {
  std::string task;
  std::string workflow_id;
  std::int32_t node = 0;
  std::int32_t attempt = 0;
  /// When the handler started, epoch ms.
  std::int64_t started_at = 0;
  /// Stops the handler (a revoke with terminate): its stop token at once,
  /// and, where it can be abandoned, the handler after the grace period.
  /// Empty: it cannot be stopped.
  std::function<void()> terminate;
};

class worker_activity {
 public:
  /// `slots` handler threads; at most `max_revoked` revoked workflow ids are
  /// remembered (the oldest are forgotten first: a revocation matters only
  /// while the workflow's tasks can still be queued).
  explicit worker_activity(std::size_t slots, std::size_t max_revoked = 10'000);

  /// Handler thread `slot` (below `slots`) starts running `task`.
  void started(std::size_t slot, active_task task);
  /// Handler thread `slot` is done with its task.
  void finished(std::size_t slot);
  /// The tasks running now, by slot.
  std::vector<active_task> active() const;
  /// Handler threads.
  std::size_t slots() const noexcept { return slot_count_; }

  /// Remembers that the task nodes `nodes` of `workflow_id` (none: the
  /// whole workflow) were revoked, and with `terminate` stops the handlers
  /// running them now. Idempotent.
  void revoke(const std::string& workflow_id, const std::vector<std::int32_t>& nodes = {}, bool terminate = false);
  /// Whether node `node` of `workflow_id`, or the whole workflow, was
  /// revoked (and not forgotten since).
  bool is_revoked(const std::string& workflow_id, std::int32_t node) const;
  /// Revocations remembered now (a workflow, or one of its nodes, each).
  std::size_t revoked_count() const;

 private:
  // One lock per handler thread, so threads starting tasks never contend;
  // only `active()` takes them all, one after the other.
  struct slot_state {
    std::mutex mutex;
    std::optional<active_task> task;
  };
  std::size_t slot_count_;
  std::unique_ptr<slot_state[]> slots_;
  mutable std::mutex mutex_;  // the revoked set
  std::size_t max_revoked_;
  std::unordered_set<std::string> revoked_;
  // Lets `is_revoked` skip the lock on every task while nothing is revoked.
  std::atomic<std::size_t> revoked_size_{0};
  std::deque<std::string> revoked_order_;
};

}  // namespace trellis::detail
