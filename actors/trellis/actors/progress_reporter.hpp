#pragma once

/// @file
/// Carries what running handlers report (`task_context::report_progress`,
/// `set_state`) to the dispatcher as `progress` events, coalesced: a handler
/// that reports in a tight loop costs a map update per call, and each
/// running attempt sends at most one event per interval (its latest
/// report), plus the last one, which its handler thread sends right before
/// the outcome (`close`). Events take the path outcomes take
/// (`transport::publish_events`), so the dispatcher, the store's only
/// writer, stores them with its normal batched commit.
///
/// A report is advisory: one the broker refuses is kept as the latest and
/// tried again at the next tick; one that comes after its attempt closed
/// (an abandoned handler) is dropped.

#include "trellis/envelope.hpp"
#include "trellis/task_progress.hpp"
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace trellis::detail {

/// "<workflow>:<node>:<attempt>": an attempt's key (its task message id).
std::string attempt_key(const std::string& workflow_id, std::int32_t node, std::int32_t attempt);

class progress_reporter : public std::enable_shared_from_this<progress_reporter> {
 public:
  /// `partitions`: as the worker pool's (each event goes to its workflow's
  /// dispatcher partition).
  progress_reporter(std::shared_ptr<transport> bus, int partitions);
  ~progress_reporter();
  progress_reporter(const progress_reporter&) = delete;
  progress_reporter& operator=(const progress_reporter&) = delete;

  /// Starts the thread that calls `flush()` every `interval`.
  void start(std::chrono::milliseconds interval);
  /// Stops and joins that thread (a last flush first); idempotent.
  void stop();

  /// Where the attempt of task message `task` reports while it runs. Cheap
  /// for a handler that never reports: the attempt joins the ones a flush
  /// looks at on its first report.
  std::shared_ptr<progress_sink> open(const envelope& task);
  /// The attempt of `sink` (from `open`) ended: later reports of it are
  /// dropped. Returns the event of its latest report not sent yet, to be
  /// published before its outcome; waits for a flush in progress, so that
  /// no report of it is published after this returns.
  std::optional<outgoing_event> close(const std::shared_ptr<progress_sink>& sink);

  /// Publishes the latest unsent report of every open attempt, in one call;
  /// returns how many. Called by the thread; tests call it directly.
  std::size_t flush();

 private:
  struct attempt_entry;
  class sink;

  /// Under `mutex_`: the event of `entry`'s latest report.
  outgoing_event event_of(attempt_entry& entry);

  std::shared_ptr<transport> bus_;
  int partitions_;
  /// Held across a flush's publish, and by `close`, which so waits for it.
  std::mutex publishing_;
  /// Guards `open_` and every entry.
  std::mutex mutex_;
  /// The attempts that reported, until they close.
  std::unordered_map<const attempt_entry*, std::shared_ptr<attempt_entry>> open_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace trellis::detail
