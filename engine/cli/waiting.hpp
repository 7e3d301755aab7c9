#pragma once

/// @file
/// Internal to the command line: how `run`, `resume`, `submit --wait` and
/// `dlq replay` wait for a workflow (docs/cli.md "Waiting"). The id goes to
/// stderr before the wait, so an interrupted command never loses it; the
/// wait ends at `--timeout-ms` (exit 6, the workflow goes on); a live
/// progress line (progress_line.hpp) is redrawn between slices of the wait.

#include "progress_line.hpp"

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace trellis::cli {

/// The bound of one command's waits: none, or `--timeout-ms` from the
/// moment the command started waiting (one bound for all its workflows).
class wait_limit {
 public:
  using clock = std::chrono::steady_clock;

  wait_limit() = default;
  explicit wait_limit(std::optional<std::int64_t> timeout_ms) : timeout_ms_(timeout_ms) {}

  /// Starts the clock; the first wait starts it too.
  void start() {
    if (timeout_ms_ && !deadline_) {
      deadline_ = clock::now() + std::chrono::milliseconds{*timeout_ms_};
    }
  }
  bool bounded() const noexcept { return timeout_ms_.has_value(); }
  std::int64_t timeout_ms() const noexcept { return timeout_ms_.value_or(0); }
  /// What is left of the bound; an hour when there is none.
  std::chrono::milliseconds remaining() const {
    if (!deadline_) {
      return std::chrono::hours{1};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - clock::now());
    return std::max(left, std::chrono::milliseconds{0});
  }
  bool expired() const { return deadline_ && clock::now() >= *deadline_; }

 private:
  std::optional<std::int64_t> timeout_ms_;
  std::optional<clock::time_point> deadline_;
};

/// What a wait does once if it lasts: `submit --wait` looks for the
/// workers the workflow needs only when the outcome did not come at once.
struct slow_wait_check {
  std::chrono::milliseconds after{1'000};
  std::function<void()> run;
};

/// Waits for `handle` (a workflow_handle or client_handle) within `limit`;
/// with an enabled `progress` line, in slices of `slice` between which the
/// line redraws, erased before this returns; `slow->run` once, when the
/// wait has lasted `slow->after`. Returns what the handle's `wait_for`
/// returned; `errc::timeout` once the limit ran out.
template <class Handle>
expected<value> wait_within(const Handle& handle, wait_limit& limit, progress_line* progress,
                            std::chrono::milliseconds slice, const slow_wait_check* slow = nullptr) {
  using clock = std::chrono::steady_clock;
  limit.start();
  bool live = progress != nullptr && progress->enabled();
  bool check_pending = slow != nullptr && slow->run;
  auto started = clock::now();
  for (;;) {
    std::chrono::milliseconds step = live ? slice : std::chrono::hours{1};
    if (check_pending) {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
      step = std::min(step, std::max(slow->after - waited, std::chrono::milliseconds{0}));
    }
    auto r = handle.wait_for(std::min(limit.remaining(), step));
    if (r || r.error().code() != errc::timeout || limit.expired()) {
      if (live) {
        progress->clear();
      }
      return r;
    }
    if (check_pending && clock::now() - started >= slow->after) {
      check_pending = false;
      if (live) {
        progress->clear();  // its warnings on lines of their own
      }
      slow->run();
    }
    if (live) {
      progress->tick();
    }
  }
}

/// `trellis: workflow ID submitted` (or `what` instead of submitted) on
/// stderr, flushed: the first thing a waiting command says.
void announce_workflow(const std::string& id, const std::string& what);

/// The message of an expired wait on stderr, naming the workflow, then
/// `hint`: where it goes on and how to follow it; returns exit_timed_out.
int report_timed_out(const std::string& id, const wait_limit& limit, const std::string& hint);

}  // namespace trellis::cli
