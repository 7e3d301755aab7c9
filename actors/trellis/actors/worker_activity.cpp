#include "trellis/actors/worker_activity.hpp"

#include <algorithm>
#include <utility>

namespace trellis::detail {

worker_activity::worker_activity(std::size_t slots, std::size_t max_revoked)
    : slot_count_(slots), slots_(new slot_state[slots]), max_revoked_(std::max<std::size_t>(1, max_revoked)) {}

void worker_activity::started(std::size_t slot, active_task task) {
  if (slot < slot_count_) {
    std::lock_guard<std::mutex> guard{slots_[slot].mutex};
    slots_[slot].task = std::move(task);
  }
}

void worker_activity::finished(std::size_t slot) {
  if (slot < slot_count_) {
    std::lock_guard<std::mutex> guard{slots_[slot].mutex};
    slots_[slot].task.reset();
  }
}

std::vector<active_task> worker_activity::active() const {
  std::vector<active_task> out;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    std::lock_guard<std::mutex> guard{slots_[i].mutex};
    if (slots_[i].task) {
      out.push_back(*slots_[i].task);
    }
  }
  return out;
}

namespace {

/// The key of a revoked node: ids never hold a space (subjects.hpp).
std::string node_key(const std::string& workflow_id, std::int32_t node) {
  return workflow_id + " " + std::to_string(node);
}

}  // namespace

void worker_activity::revoke(const std::string& workflow_id, const std::vector<std::int32_t>& nodes, bool terminate) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto remember = [&](std::string key) {
      if (!revoked_.insert(key).second) {
        return;
      }
      revoked_order_.push_back(std::move(key));
      while (revoked_order_.size() > max_revoked_) {
        revoked_.erase(revoked_order_.front());
        revoked_order_.pop_front();
      }
    };
    if (nodes.empty()) {
      remember(workflow_id);
    }
    for (auto n : nodes) {
      remember(node_key(workflow_id, n));
    }
    revoked_size_ = revoked_.size();
  }
  if (!terminate) {
    return;
  }
  for (std::size_t i = 0; i < slot_count_; ++i) {
    std::lock_guard<std::mutex> guard{slots_[i].mutex};
    const auto& t = slots_[i].task;
    if (!t || t->workflow_id != workflow_id || !t->terminate) {
      continue;
    }
    if (nodes.empty() || std::find(nodes.begin(), nodes.end(), t->node) != nodes.end()) {
      t->terminate();
    }
  }
}

bool worker_activity::is_revoked(const std::string& workflow_id, std::int32_t node) const {
  if (revoked_size_ == 0) {
    return false;
  }
  std::lock_guard<std::mutex> guard{mutex_};
  return revoked_.count(workflow_id) != 0 || revoked_.count(node_key(workflow_id, node)) != 0;
}

std::size_t worker_activity::revoked_count() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return revoked_.size();
}

}  // namespace trellis::detail
