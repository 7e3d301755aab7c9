#pragma once

/// @file
/// A transport that hands every call to an in-process transport, for unit
/// tests that change one seam of it: derive, override the calls under test
/// (a broker that refuses publishes, the control seam of cluster mode) and
/// forward the rest through `inner`.

#include "trellis/transport/inproc_transport.hpp"
#include "trellis/transport/transport.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace trellis::test {

class forwarding_transport : public detail::transport {
 public:
  expected<void> publish_tasks(const std::string& queue, std::vector<detail::outgoing_task>& messages) override {
    return inner.publish_tasks(queue, messages);
  }
  std::vector<detail::delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                            std::chrono::milliseconds wait) override {
    return inner.fetch_tasks(queues, max, wait);
  }
  void ack_task(const detail::delivery& d) override { inner.ack_task(d); }
  expected<void> publish_events(std::vector<detail::outgoing_event> messages) override {
    return inner.publish_events(std::move(messages));
  }
  void consume_events(std::function<void(std::vector<detail::delivery>)> sink) override {
    inner.consume_events(std::move(sink));
  }
  void ack_event(const detail::delivery& d) override { inner.ack_event(d); }
  void close() override { inner.close(); }
  expected<std::int64_t> reserve_start(const std::string& task, std::int64_t interval_us) override {
    return inner.reserve_start(task, interval_us);
  }

  detail::inproc_transport inner;
};

}  // namespace trellis::test
