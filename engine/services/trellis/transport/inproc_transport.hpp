#pragma once

/// @file
/// Embedded mode's transport: queues in memory, events handed straight to
/// the dispatcher's sink. Durability does not come from here but from the
/// store: a task whose outcome is not committed is published again when the
/// dispatcher restores its workflows, so a crash loses nothing.

#include "trellis/transport/transport.hpp"

#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

namespace trellis::detail {

class inproc_transport final : public transport {
 public:
  inproc_transport() = default;

  expected<void> publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) override;
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait) override;
  void ack_task(const delivery& d) override;
  expected<void> publish_events(std::vector<outgoing_event> messages) override;
  void consume_events(std::function<void(std::vector<delivery>)> sink) override;
  void ack_event(const delivery& d) override;
  void close() override;

  /// Messages waiting, per queue (the consumer-lag gauge).
  std::map<std::string, std::size_t> depths() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  /// One FIFO per priority level: a queue is served highest level first.
  using prioritized = std::array<std::deque<std::string>, 10>;
  std::map<std::string, prioritized, std::less<>> queues_;
  std::size_t waiting_ = 0;
  bool closed_ = false;
  std::mutex sink_mutex_;
  std::function<void(std::vector<delivery>)> sink_;
};

}  // namespace trellis::detail
