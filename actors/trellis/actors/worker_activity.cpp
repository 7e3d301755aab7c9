#include "trellis/actors/worker_activity.hpp"

#include <algorithm>
#include <utility>

namespace trellis::detail {

worker_activity::worker_activity(std::size_t slots, std::size_t max_revoked)
    : slots_(slots), max_revoked_(std::max<std::size_t>(1, max_revoked)) {}

void worker_activity::started(std::size_t slot, active_task task) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (slot < slots_.size()) {
    slots_[slot] = std::move(task);
  }
}

void worker_activity::finished(std::size_t slot) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (slot < slots_.size()) {
    slots_[slot].reset();
  }
}

std::vector<active_task> worker_activity::active() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<active_task> out;
  for (const auto& s : slots_) {
    if (s) {
      out.push_back(*s);
    }
  }
  return out;
}

void worker_activity::revoke(const std::string& workflow_id) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!revoked_.insert(workflow_id).second) {
    return;
  }
  revoked_order_.push_back(workflow_id);
  while (revoked_order_.size() > max_revoked_) {
    revoked_.erase(revoked_order_.front());
    revoked_order_.pop_front();
  }
  revoked_size_ = revoked_.size();
}

bool worker_activity::is_revoked(const std::string& workflow_id) const {
  if (revoked_size_ == 0) {
    return false;
  }
  std::lock_guard<std::mutex> guard{mutex_};
  return revoked_.count(workflow_id) != 0;
}

std::size_t worker_activity::revoked_count() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return revoked_.size();
}

}  // namespace trellis::detail
