#pragma once

/// @file
/// Embedded mode's transport: queues in memory, events handed straight to
/// the dispatcher's sink. Durability does not come from here but from the
/// store: a task whose outcome is not committed is published again when the
/// dispatcher restores its workflows, so a crash loses nothing.
///
/// Control requests (control_messages.hpp) take the dispatcher's own path as
/// in cluster mode: `ask_control` hands one to the sink the dispatcher
/// installed (`consume_control`) and waits for its `answer_control`. The
/// dispatcher reads its store on its own thread, after the open batch commits.

#include "trellis/transport/transport.hpp"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

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
  void consume_control(std::function<void(delivery)> sink) override;
  void answer_control(const delivery& d, const std::string& reply) override;
  void close() override;
  /// From this transport's own gate: every handler thread of the engine.
  expected<std::int64_t> reserve_start(const std::string& task, std::int64_t interval_us) override {
    return gate_.reserve(task, interval_us, now_epoch_us());
  }

  /// Hands control request `request` (an encoded `control_request`) to the
  /// dispatcher and returns its encoded reply, waiting at most `wait` in all
  /// (for a starting dispatcher to install its sink, then for the answer).
  /// Errors: `shutting_down` when no dispatcher takes control requests or the
  /// transport closes first, `timeout` when the answer does not come in time.
  expected<std::string> ask_control(std::string request, std::chrono::milliseconds wait);

  /// Messages waiting, per queue (the consumer-lag gauge).
  std::map<std::string, std::size_t> depths() const;

  /// Where task events go (the engine's HTTP event stream); without a sink
  /// none are built. Set before any actor uses the transport, never after:
  /// it is read without a lock.
  void set_lifecycle_sink(std::function<void(const std::vector<lifecycle_event>&)> sink) {
    lifecycle_sink_ = std::move(sink);
  }
  bool announces_lifecycle() const override { return static_cast<bool>(lifecycle_sink_); }
  void announce_lifecycle(const std::vector<lifecycle_event>& events) override {
    if (lifecycle_sink_) {
      lifecycle_sink_(events);
    }
  }

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
  std::mutex control_mutex_;
  std::condition_variable control_answered_;
  std::function<void(delivery)> control_sink_;
  /// Requests asked and not yet taken back by their asker, by token; the
  /// reply once answered.
  std::map<std::uint64_t, std::optional<std::string>> control_answers_;
  std::uint64_t last_control_token_ = 0;
  bool control_closed_ = false;
  start_gate gate_;
  std::function<void(const std::vector<lifecycle_event>&)> lifecycle_sink_;
};

}  // namespace trellis::detail
