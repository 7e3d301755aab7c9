#pragma once

/// @file
/// Task events on their way to HTTP clients (`GET /api/events`, server-sent
/// events): a bounded ring of the latest events, each numbered, that any
/// number of readers follow at their own pace. A reader that falls behind
/// by more than the ring holds skips what it lost and is told how much
/// (the stream is a view of the lifecycle, not a record of it).
///
/// Thread-safe: publishers (the transport, a NATS subscription) and readers
/// (HTTP threads) never wait for each other beyond one short lock.

#include "trellis/lifecycle_events.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace trellis::detail {

class event_hub {
 public:
  /// One event as a reader gets it: its number (1, 2, ...), kind and JSON.
  struct item {
    std::uint64_t seq = 0;
    std::string kind;
    std::string json;
  };

  /// What one read returns.
  struct batch {
    std::vector<item> items;
    /// Events after the reader's position that the ring no longer held.
    std::uint64_t missed = 0;
    /// The hub was closed: the reader should stop.
    bool closed = false;
  };

  /// Keeps the latest `capacity` events (at least 1).
  explicit event_hub(std::size_t capacity = 4096);

  void publish(const std::vector<lifecycle_event>& events);

  /// The events numbered after `after` (at most `max`), waiting up to
  /// `wait` for the first one. `after` 0 starts at the oldest event held;
  /// use `latest()` to start at the present.
  batch read_after(std::uint64_t after, std::size_t max, std::chrono::milliseconds wait);

  /// The number of the newest event (0: none yet).
  std::uint64_t latest() const;

  /// Wakes every reader, for good.
  void close();

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<item> ring_;
  std::uint64_t next_seq_ = 1;
  bool closed_ = false;
};

}  // namespace trellis::detail
