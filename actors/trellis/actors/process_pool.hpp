#pragma once

/// @file
/// The process pool of a cluster worker (`trellis-demo worker --pool
/// process`, Celery's prefork; docs/decisions/0023-process-pool.md): each
/// slot of the worker pool runs its handlers in a child process of its own,
/// so that a handler that crashes (SIGSEGV, abort) or passes its hard time
/// limit costs only that child.
///
/// Children come from the zygote (zygote.hpp), forked by `start` while the
/// worker is still single-threaded. A slot sends one call at a time to its
/// child (child_protocol.hpp) and waits for the reply until the call's hard
/// limit:
/// - a reply: the call's result, retry request or failure, as if the handler
///   had run in the worker (`child_outcome::replied`);
/// - past the hard limit: the child is killed with SIGKILL and replaced, the
///   attempt fails with `time_limit_exceeded` (`timed_out`);
/// - the child died (end of file), or wrote something that is not a reply:
///   it is reaped and replaced, the attempt fails with `worker_lost`, the
///   message naming the signal ("child 1234 killed by SIGSEGV while running
///   crash") (`lost`);
/// - a revoke with terminate (`terminate`): the child is killed at once,
///   since a stop token does not cross processes (`terminated`).
///
/// If the zygote dies, no child can be replaced: the pool turns `failed()`,
/// and every call from then on, and a call whose child died with the
/// zygote, is `unavailable`: the task is handed back unrun, unacked, for
/// JetStream to deliver again. The worker then stops (exit code 5).
///
/// Thread-safety: `run` and `next_job` of one slot from that slot's thread
/// only; `terminate`, `failed` and `failure` from any thread.

#include "trellis/actors/child_protocol.hpp"
#include "trellis/canvas.hpp"
#include "trellis/metrics.hpp"
#include "trellis/task.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace trellis::detail {

class process_pool_core;

class process_pool {
 public:
  /// Forks the zygote and asks it for one child per slot. Must be called
  /// while the process is single-threaded (`invalid_config` otherwise).
  /// `stats` counts replaced children (`trellis_worker_children_crashed_total`,
  /// `trellis_worker_children_killed_total`).
  static expected<std::shared_ptr<process_pool>> start(std::shared_ptr<const task_registry> tasks, std::size_t slots,
                                                       const canvas_limits& limits, std::shared_ptr<metrics> stats);

  /// Closes every child's socket and the control socket (children and the
  /// zygote exit at end of file) and reaps the zygote.
  ~process_pool();
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  /// Runs `request` (of a task from `queue`) in `slot`'s child, waiting for
  /// the reply until `deadline` (none: no hard limit). Progress the handler
  /// reports meanwhile goes to `progress` (if not null), from this thread.
  child_outcome run(std::size_t slot, const child_request& request, const std::string& queue,
                    std::optional<std::chrono::steady_clock::time_point> deadline,
                    const std::shared_ptr<progress_sink>& progress = nullptr);

  /// The number the next `run` of `slot` gets (for `terminate`).
  std::uint64_t next_job(std::size_t slot) const;

  /// Kills the child running job `job` of `slot`, if it still runs it.
  void terminate(std::size_t slot, std::uint64_t job);

  /// True once the zygote is gone: no call runs any more.
  bool failed() const;
  /// What happened to the zygote, once `failed()`.
  std::string failure() const;

 private:
  explicit process_pool(std::unique_ptr<process_pool_core> core);
  std::unique_ptr<process_pool_core> core_;
};

}  // namespace trellis::detail
