#include "trellis/stop_token.hpp"

#include <algorithm>
#include <thread>

namespace trellis {

bool stop_token::stop_requested() const {
  if (!state_) {
    return false;
  }
  if (state_->deadline && std::chrono::steady_clock::now() >= *state_->deadline) {
    return true;
  }
  std::lock_guard<std::mutex> guard{state_->mutex};
  return state_->requested;
}

std::optional<std::chrono::steady_clock::time_point> stop_token::deadline() const {
  return state_ ? state_->deadline : std::nullopt;
}

bool stop_token::wait_for(std::chrono::steady_clock::duration d) const {
  auto until = std::chrono::steady_clock::now() + d;
  if (!state_) {
    std::this_thread::sleep_until(until);
    return true;
  }
  auto stop_at = state_->deadline ? std::min(until, *state_->deadline) : until;
  std::unique_lock<std::mutex> lock{state_->mutex};
  state_->changed.wait_until(lock, stop_at, [&] { return state_->requested; });
  if (state_->requested) {
    return false;
  }
  return !(state_->deadline && std::chrono::steady_clock::now() >= *state_->deadline);
}

void stop_source::request_stop() {
  {
    std::lock_guard<std::mutex> guard{state_->mutex};
    state_->requested = true;
  }
  state_->changed.notify_all();
}

}  // namespace trellis
