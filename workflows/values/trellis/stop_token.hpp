#pragma once

/// @file
/// How a running handler learns that it should stop: a `stop_token`, read
/// from its `task_context` (`ctx.stop_token()`) and passed on to whatever
/// the handler calls. The project is C++17, so this stands in for C++20's
/// `std::stop_token`, with the two things a time-limited task needs beyond
/// it: the deadline, and a wait that wakes when the stop comes.
///
/// A stop comes at the attempt's soft time limit (the deadline passes) or
/// when the worker gives the attempt up (its hard time limit). A default
/// token never stops.
///
/// @code
/// while (more_work()) {
///   if (ctx.cancelled()) { save_progress(); ctx.throw_if_cancelled(); }
///   step();
/// }
/// @endcode

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

namespace trellis {

namespace detail {

/// What a token reads and a source sets; shared, since an abandoned handler
/// may hold its token after the worker moved on.
struct stop_state {
  explicit stop_state(std::optional<std::chrono::steady_clock::time_point> at) : deadline(at) {}
  const std::optional<std::chrono::steady_clock::time_point> deadline;
  std::mutex mutex;
  std::condition_variable changed;
  bool requested = false;
};

}  // namespace detail

class stop_source;

/// A handler's view of its stop. Cheap to copy; thread-safe.
class stop_token {
 public:
  /// A token that never stops.
  stop_token() = default;

  /// True once the deadline passed or the stop was requested.
  bool stop_requested() const;
  /// When the stop comes by itself (the soft time limit); empty if only a
  /// request can stop it.
  std::optional<std::chrono::steady_clock::time_point> deadline() const;
  /// Waits for `d`, or less when the stop comes first. True if the whole
  /// time passed without a stop, false if it was cut short (or a stop was
  /// requested before).
  bool wait_for(std::chrono::steady_clock::duration d) const;

 private:
  friend class stop_source;
  explicit stop_token(std::shared_ptr<detail::stop_state> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::stop_state> state_;
};

/// The side that stops: the worker that runs the handler.
class stop_source {
 public:
  /// A source whose tokens stop by themselves at `deadline` (or never).
  explicit stop_source(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt)
      : state_(std::make_shared<detail::stop_state>(deadline)) {}

  stop_token token() const { return stop_token{state_}; }
  /// Stops every token now, and wakes their waits.
  void request_stop();

 private:
  std::shared_ptr<detail::stop_state> state_;
};

}  // namespace trellis
