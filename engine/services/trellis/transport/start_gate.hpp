#pragma once

/// @file
/// Rate limits, enforced where a handler starts: for each task name, the
/// next free start slot. A start under a rate limit of one start per
/// `interval` reserves `slot = max(now, next)` and moves `next` to
/// `slot + interval`; its handler starts at `slot`. So starts of one name
/// are at least `interval` apart whichever thread or worker takes them, and
/// they are spaced evenly rather than in bursts.
///
/// `start_gate` is the in-process gate (embedded mode: every handler thread
/// of the engine shares the transport's). In cluster mode the same
/// reservation is a compare-and-set on a key of the namespace's key-value
/// bucket, so it holds across every worker process (nats_rates.hpp).

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace trellis::detail {

/// One reservation: where the handler starts, and the next free slot after it.
struct start_slot {
  /// When the handler may start, in microseconds since the Unix epoch.
  std::int64_t start_us = 0;
  /// The next free slot of the task name after this reservation.
  std::int64_t next_us = 0;
};

/// The reservation rule, alone: `next_us` the name's next free slot (0 when
/// it has none), `now_us` the time, `interval_us` (>= 1) the spacing.
inline start_slot reserve_slot(std::int64_t next_us, std::int64_t now_us, std::int64_t interval_us) noexcept {
  start_slot s;
  s.start_us = next_us > now_us ? next_us : now_us;
  s.next_us = s.start_us + (interval_us < 1 ? 1 : interval_us);
  return s;
}

/// The in-process gate: the next free slot per task name, under a mutex.
/// Thread-safe. Holds one integer per rate-limited task name.
class start_gate {
 public:
  /// Reserves a start of `task` at or after `now_us`, at least `interval_us`
  /// after the slot reserved before it; returns the start time (epoch us).
  std::int64_t reserve(const std::string& task, std::int64_t interval_us, std::int64_t now_us);

 private:
  std::mutex mutex_;
  std::map<std::string, std::int64_t, std::less<>> next_;
};

/// The process's gate, for a transport that keeps no gate of its own (the
/// default of `transport::reserve_start`).
start_gate& process_start_gate();

/// Now in microseconds since the Unix epoch (the system clock), the time
/// slots are given in: the same on every worker of a cluster, within the
/// hosts' clock skew.
std::int64_t now_epoch_us();

}  // namespace trellis::detail
