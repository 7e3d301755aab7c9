#pragma once

/// @file
/// How a failed attempt of a task is retried.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace trellis {

/// How the delay grows from one retry to the next.
enum class backoff_kind : std::uint8_t {
  /// Every retry waits `countdown`.
  fixed,
  /// Retry n (1-based) waits `countdown * 2^(n-1)`, capped at `backoff_max`.
  exponential,
};

/// A retry policy. The defaults are Celery's in spirit: a handler failure is
/// not retried unless the task or signature asks for it (Celery's
/// `autoretry_for` is off by default), and when retries are asked for they back
/// off exponentially from 1 s, capped at 60 s, with full jitter.
///
/// A retry is a new attempt of the same node, scheduled durably by the
/// dispatcher: a crash does not lose a pending retry. When the retries run out
/// the node fails and its last task message goes to the dead-letter store.
///
/// `retry_on` and `dont_retry_on` choose which failures are retried at all,
/// by their error type (Celery's `autoretry_for` and `dont_autoretry_for`):
/// a `task_error`'s type, a C++ exception's type name, `time_limit_exceeded`
/// or `worker_lost`. A failure of a type they filter out fails the node at
/// once, keeping its type. They do not apply to a handler's explicit
/// `retry_later` (always a counted retry) nor to a rejection (never retried).
struct retry_policy {
  /// Retries after the first attempt; 0 means one attempt in all.
  int max_retries = 0;
  /// Base delay before the first retry.
  std::chrono::milliseconds countdown{1000};
  /// Fixed or exponential growth of the delay.
  backoff_kind backoff = backoff_kind::exponential;
  /// Upper bound of any single delay.
  std::chrono::milliseconds backoff_max{60000};
  /// Full jitter: the delay is drawn uniformly from [0, computed delay], which
  /// spreads out a herd of retries after a shared outage.
  bool jitter = true;
  /// The error types that are retried; empty: every type.
  std::vector<std::string> retry_on;
  /// The error types that are never retried, whatever `retry_on` says.
  std::vector<std::string> dont_retry_on;

  /// No retries.
  static retry_policy none() { return retry_policy{}; }
  /// `retries` retries, each `delay` apart, without jitter.
  static retry_policy fixed(int retries, std::chrono::milliseconds delay) {
    retry_policy p;
    p.max_retries = retries;
    p.countdown = delay;
    p.backoff = backoff_kind::fixed;
    p.jitter = false;
    return p;
  }
  /// `retries` retries from `base` doubling up to `cap`, with jitter.
  static retry_policy exponential(int retries, std::chrono::milliseconds base, std::chrono::milliseconds cap) {
    retry_policy p;
    p.max_retries = retries;
    p.countdown = base;
    p.backoff = backoff_kind::exponential;
    p.backoff_max = cap;
    return p;
  }

  /// This policy, retrying only failures of these types.
  retry_policy with_retry_on(std::vector<std::string> types) const {
    retry_policy p = *this;
    p.retry_on = std::move(types);
    return p;
  }
  /// This policy, never retrying failures of these types.
  retry_policy with_dont_retry_on(std::vector<std::string> types) const {
    retry_policy p = *this;
    p.dont_retry_on = std::move(types);
    return p;
  }

  /// Whether a failure of `error_type` may be retried (the count aside): in
  /// `retry_on`, or that list is empty, and not in `dont_retry_on`.
  bool retries_type(std::string_view error_type) const noexcept;

  /// The delay before retry `retry_number` (1 for the first retry). `unit` is a
  /// number in [0, 1) used for jitter, so callers choose the randomness (and
  /// tests choose it exactly).
  std::chrono::milliseconds delay_before(int retry_number, double unit) const noexcept;

  friend bool operator==(const retry_policy& a, const retry_policy& b) {
    return a.max_retries == b.max_retries && a.countdown == b.countdown && a.backoff == b.backoff &&
           a.backoff_max == b.backoff_max && a.jitter == b.jitter && a.retry_on == b.retry_on &&
           a.dont_retry_on == b.dont_retry_on;
  }
};

}  // namespace trellis
