#pragma once

/// @file
/// Where the engine reads the time, and its one doubling backoff.
///
/// `clock` is the seam: the dispatcher and the supervisor read the time
/// through the one in their configuration, the system's clocks unless a test
/// runs them on virtual time (tests/support/virtual_time.hpp). Their timers
/// are CAF's (`delayed_send`), which the actor system's clock fires; a clock
/// here gives the time those timers are computed from and compared with, so
/// a test that moves CAF's test coordinator moves both. Code that only stamps
/// a row or a message with the time calls `now_epoch_ms()`.
///
/// Kept free of every other Trellis header, so that any layer can use it.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>

namespace trellis::detail {

/// Now in milliseconds since the Unix epoch on the system clock: the times
/// the store and the messages carry.
inline std::int64_t now_epoch_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// Where an actor reads the time.
class clock {
 public:
  virtual ~clock() = default;
  /// Wall-clock time in milliseconds since the Unix epoch: due times, and
  /// the times rows and messages carry.
  virtual std::int64_t now_epoch_ms() const = 0;
  /// Monotonic time: how long something waited or has run.
  virtual std::chrono::steady_clock::time_point now_steady() const = 0;
};

/// The system's clocks.
class real_clock final : public clock {
 public:
  std::int64_t now_epoch_ms() const override { return detail::now_epoch_ms(); }
  std::chrono::steady_clock::time_point now_steady() const override { return std::chrono::steady_clock::now(); }
};

/// The system's clocks, shared: the default of every configuration that takes a clock.
inline std::shared_ptr<const clock> system_clocks() {
  static const auto shared = std::make_shared<const real_clock>();
  return shared;
}

/// The wait before trying again after a failure: the first wait, doubling
/// after every failed try up to a cap, and the first again after a success.
class backoff {
 public:
  constexpr backoff(std::chrono::milliseconds first, std::chrono::milliseconds cap) noexcept
      : first_(first), cap_(cap), next_(first) {}

  /// The wait before the next try; the one after it is twice as long, at most the cap.
  std::chrono::milliseconds next() noexcept {
    auto wait = next_;
    next_ = std::min(next_ * 2, cap_);
    return wait;
  }

  /// The wait `next()` gives now, without doubling it.
  std::chrono::milliseconds peek() const noexcept { return next_; }

  /// After a success: the next wait is the first one again.
  void reset() noexcept { next_ = first_; }

 private:
  std::chrono::milliseconds first_;
  std::chrono::milliseconds cap_;
  std::chrono::milliseconds next_;
};

}  // namespace trellis::detail
