#pragma once

/// @file
/// Where a worker pool runs a handler that has a hard time limit: on a
/// thread of the slot's own, which the slot's loop waits for until the
/// limit, and abandons past it. A thread cannot be interrupted safely, so an
/// abandoned one keeps running until its handler returns, then ends; its
/// result is discarded. The slot starts a replacement thread for its next
/// limited task, so the overrun holds neither the slot nor the drain.
///
/// `abandoned_handlers` counts the abandoned threads of a pool and bounds
/// them: at the bound the pool takes no new task until one returns
/// (docs/operations.md, "Time limits").

#include "trellis/metrics.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace trellis::detail {

/// The abandoned handler threads of one pool. Shared with those threads,
/// which report their return to it after the pool may be gone.
class abandoned_handlers {
 public:
  /// `bound` (at least 1): how many may run before the pool stops taking
  /// tasks.
  abandoned_handlers(std::size_t bound, std::shared_ptr<metrics> stats);

  /// A thread was abandoned (running `task` of `queue`).
  void add(const std::string& queue, const std::string& task);
  /// An abandoned thread's handler returned.
  void returned();
  /// Handlers abandoned and still running.
  std::size_t count() const;
  /// True while the count is at or past the bound.
  bool at_bound() const;
  /// Waits until the count is below the bound or `stopping`; true when
  /// below. `wake` (the drain) ends every wait at once.
  bool wait_below_bound(const std::atomic<bool>& stopping);
  void wake();

 private:
  const std::size_t bound_;
  std::shared_ptr<metrics> stats_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t count_ = 0;
  bool reported_ = false;  // the bound was reached and said on stderr
};

/// The handler thread of one pool slot, started on first use and replaced
/// when abandoned. Used by the slot's loop thread only.
class handler_slot {
 public:
  explicit handler_slot(std::shared_ptr<abandoned_handlers> abandoned) : abandoned_(std::move(abandoned)) {}
  /// Joins the thread, which is idle (a running one was abandoned).
  ~handler_slot();
  handler_slot(const handler_slot&) = delete;
  handler_slot& operator=(const handler_slot&) = delete;

  /// Runs `job` on the slot's thread and waits until it returns (true) or
  /// `deadline` passes (false): then the thread is abandoned, counted as
  /// running `task` of `queue`, and `job` must own everything it touches.
  bool run(std::function<void()> job, std::chrono::steady_clock::time_point deadline, const std::string& queue,
           const std::string& task);

  /// The number the next `run` call's job gets (the slot's loop thread
  /// asks, right before it calls `run`).
  std::uint64_t next_job() const noexcept { return jobs_ + 1; }

  /// Brings the deadline of job `job` forward to `at` (a revoke with
  /// terminate: its grace period), if that job is still running; nothing
  /// otherwise. Safe from any thread.
  void cut_deadline(std::uint64_t job, std::chrono::steady_clock::time_point at);

 private:
  struct shared;
  std::shared_ptr<abandoned_handlers> abandoned_;
  std::mutex state_mutex_;  // guards the pointer `state_` for cut_deadline
  std::shared_ptr<shared> state_;
  std::thread thread_;
  std::uint64_t jobs_ = 0;  // jobs run so far; the loop thread's only
};

}  // namespace trellis::detail
