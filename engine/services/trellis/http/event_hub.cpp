#include "trellis/http/event_hub.hpp"

#include "trellis/value.hpp"

#include <algorithm>
#include <utility>

namespace trellis::detail {

event_hub::event_hub(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

void event_hub::publish(const std::vector<lifecycle_event>& events) {
  if (events.empty()) {
    return;
  }
  // Rendered outside the lock: readers only copy strings.
  std::vector<item> rendered;
  rendered.reserve(events.size());
  for (const auto& e : events) {
    rendered.push_back(item{0, to_string(e.kind), to_json(to_value(e))});
  }
  {
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto& r : rendered) {
      r.seq = next_seq_++;
      ring_.push_back(std::move(r));
      if (ring_.size() > capacity_) {
        ring_.pop_front();
      }
    }
  }
  arrived_.notify_all();
}

event_hub::batch event_hub::read_after(std::uint64_t after, std::size_t max, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock{mutex_};
  arrived_.wait_for(lock, wait, [&] { return closed_ || next_seq_ - 1 > after; });
  batch out;
  out.closed = closed_;
  if (ring_.empty() || ring_.back().seq <= after) {
    return out;
  }
  auto first = ring_.front().seq;
  if (after != 0 && after + 1 < first) {
    out.missed = first - after - 1;
  }
  auto start = after < first ? std::size_t{0} : static_cast<std::size_t>(after + 1 - first);
  for (auto i = start; i < ring_.size() && out.items.size() < max; ++i) {
    out.items.push_back(ring_[i]);
  }
  return out;
}

std::uint64_t event_hub::latest() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return next_seq_ - 1;
}

void event_hub::close() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
  }
  arrived_.notify_all();
}

}  // namespace trellis::detail
