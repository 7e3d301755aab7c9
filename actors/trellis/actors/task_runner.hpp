#pragma once

/// @file
/// One task message in, one outcome envelope out: decode, find the handler,
/// run it, and turn whatever happened (a result, a retry request, an
/// exception, a poison message) into the outcome the dispatcher applies.
/// Used by the worker pool's threads; never throws.

#include "trellis/actors/child_protocol.hpp"
#include "trellis/canvas.hpp"
#include "trellis/envelope.hpp"
#include "trellis/rate_limit.hpp"
#include "trellis/task.hpp"

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace trellis::detail {

/// What running one task message produced.
struct task_run {
  /// The outcome event to report.
  envelope outcome;
  /// The queue the message came from ("" when it could not be decoded).
  std::string queue;
  /// Seconds from publication to the handler starting (consumer lag), at
  /// millisecond resolution; empty when the handler did not run.
  std::optional<double> queue_wait;
  /// The handler did not run because `run_hooks::claim` said another
  /// delivery of the same attempt ran here and reported: `outcome` is not to
  /// be reported.
  bool duplicate = false;
  /// The handler did not run because the worker stopped while the task
  /// waited for its rate-limit slot (`run_hooks::pace`): `outcome` is not to
  /// be reported, and the message is handed back for another start.
  bool handed_back = false;
};

/// What the worker pool lets the runner consult and tell while it runs one
/// message. All are optional; embedded mode uses only `claim`.
struct run_hooks {
  /// Asked once the message is read: a task it calls revoked (its whole
  /// workflow, or its node) is not run, and is reported as rejected with
  /// `errc::revoked` (the dispatcher, which revoked it, counts it as a
  /// duplicate).
  std::function<bool(const std::string& workflow_id, std::int32_t node)> is_revoked;
  /// Asked once the message is read and names a task this worker has,
  /// before the revocation and expiry checks: false when another delivery of
  /// the same attempt (the same task message id) ran here and its outcome is
  /// reported, so this one must neither run nor report. It may block while
  /// that other delivery is still running.
  std::function<bool(const envelope& task)> claim;
  /// Asked once a task with a `rate_limit` may run (claimed, not revoked,
  /// not expired): returns when its rate-limit slot has come (true), or
  /// false when the worker stops first (the task is handed back unrun,
  /// `task_run::handed_back`). The revocation and expiry checks are made
  /// again after a wait. Unset: rate limits are not enforced (unit tests).
  std::function<bool(const envelope& task, const rate_limit_spec& rate)> pace;
  /// Called right before the handler runs, with the source that stops it
  /// (`task_context::stop_token`): a revoke with terminate requests the stop.
  std::function<void(const envelope& task, const stop_source& stop)> on_start;
  /// Runs the handler call `job` of a task that has a hard time limit
  /// somewhere it can be abandoned (worker_pool: the slot's handler thread,
  /// see handler_slot.hpp), waiting until it returns (true) or `deadline`
  /// passes (false: the attempt fails with `time_limit_exceeded` at once,
  /// and `job`, which owns what it touches, goes on alone). Unset: the
  /// handler runs on the calling thread, and an attempt that overran is
  /// failed when it returns.
  std::function<bool(const envelope& task, std::function<void()> job, std::chrono::steady_clock::time_point deadline)>
      run_limited;
  /// Runs the handler call in a child process instead of on the calling
  /// thread (the process pool, process_pool.hpp): `request` is the call,
  /// `deadline` its hard time limit, if any, `progress` where the handler's
  /// progress reports go (`progress` below; may be null). A reply becomes
  /// the outcome as
  /// a handler's return or throw would; a lost child fails the attempt with
  /// `worker_lost`, one killed at the limit with `time_limit_exceeded`, one
  /// killed by a revoke with terminate is `rejected` as `revoked`, and
  /// `unavailable` hands the task back unrun (`task_run::handed_back`).
  /// Set: `run_limited` is not used.
  std::function<child_outcome(const envelope& task, const child_request& request,
                              std::optional<std::chrono::steady_clock::time_point> deadline,
                              const std::shared_ptr<progress_sink>& progress)>
      run_in_child;
  /// Called right before the handler runs: where its context sends progress
  /// reports (progress_reporter.hpp). Unset or null: they go nowhere.
  std::function<std::shared_ptr<progress_sink>(const envelope& task)> progress;
  /// Called right before the handler runs, after every check that could
  /// still hand the task back or refuse it: the `started` task event.
  std::function<void(const envelope& task)> started;
};

/// The demangled C++ type name of `e`, as a failure outcome's error type.
std::string exception_type_name(const std::exception& e);

/// Runs the task message `bytes` with the handlers in `tasks`; a message
/// over `max_task_message_bytes(limits)` is poison, a result over
/// `limits.max_result_bytes` a rejection (both `payload_too_large`).
task_run run_task_message(std::string_view bytes, const task_registry& tasks, const run_hooks& hooks = {},
                          const canvas_limits& limits = {});

/// The outcome that carries a message nobody may act on (undecodable, or
/// refused by the transport: unsigned, badly signed) to the dead-letter
/// store: `rejected`, no node, `error_type` the reason's name, and the
/// original bytes as its detail, kept exactly as they arrived. Its bytes are
/// not read, so nothing in them is trusted.
envelope poison_outcome(std::string_view bytes, const error& why);

/// The outcome reported in place of `outcome` when its encoding (`bytes`
/// long) is beyond `limit`, the most the transport carries (a result over
/// `max_result_bytes` is refused before, by run_task_message). Its result
/// dropped, `rejected` with `payload_too_large`, so the step fails and is
/// dead-lettered once instead of running again on every redelivery.
envelope oversized_outcome(envelope outcome, std::size_t bytes, std::size_t limit);

}  // namespace trellis::detail
