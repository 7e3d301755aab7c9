#include "trellis/transport/start_gate.hpp"

#include <chrono>

namespace trellis::detail {

std::int64_t start_gate::reserve(const std::string& task, std::int64_t interval_us, std::int64_t now_us) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& next = next_[task];
  auto slot = reserve_slot(next, now_us, interval_us);
  next = slot.next_us;
  return slot.start_us;
}

start_gate& process_start_gate() {
  static start_gate gate;
  return gate;
}

std::int64_t now_epoch_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace trellis::detail
