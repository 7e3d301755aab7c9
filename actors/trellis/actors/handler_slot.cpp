#include "trellis/actors/handler_slot.hpp"
#include "trellis/log.hpp"

#include <algorithm>
#include <optional>

namespace trellis::detail {

abandoned_handlers::abandoned_handlers(std::size_t bound, std::shared_ptr<metrics> stats)
    : bound_(std::max<std::size_t>(1, bound)), stats_(std::move(stats)) {}

void abandoned_handlers::add(const std::string& queue, const std::string& task) {
  bool report = false;
  std::size_t now = 0;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    now = ++count_;
    if (count_ >= bound_ && !reported_) {
      reported_ = report = true;
    }
  }
  if (stats_) {
    stats_->add(counter::abandoned_handlers, queue, task);
    stats_->gauge_add(gauge::abandoned_handlers, 1);
  }
  if (report) {
    log::warn() << now << " handler(s) abandoned past their hard time limit are still running, the bound"
                << " (max_abandoned_handlers " << bound_ << "); this worker takes no new task until one returns";
  }
}

void abandoned_handlers::returned() {
  bool report = false;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    --count_;
    if (reported_ && count_ < bound_) {
      reported_ = false;
      report = true;
    }
  }
  if (stats_) {
    stats_->gauge_add(gauge::abandoned_handlers, -1);
  }
  changed_.notify_all();
  if (report) {
    log::info() << "an abandoned handler returned; this worker takes tasks again";
  }
}

std::size_t abandoned_handlers::count() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return count_;
}

bool abandoned_handlers::at_bound() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return count_ >= bound_;
}

bool abandoned_handlers::wait_below_bound(const std::atomic<bool>& stopping) {
  std::unique_lock<std::mutex> lock{mutex_};
  changed_.wait(lock, [&] { return stopping || count_ < bound_; });
  return !stopping;
}

void abandoned_handlers::wake() {
  // Taking the lock orders the caller's `stopping` store before the wake-up.
  { std::lock_guard<std::mutex> guard{mutex_}; }
  changed_.notify_all();
}

/// What the slot's loop and its handler thread share; the thread keeps it
/// alive when abandoned.
struct handler_slot::shared {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<std::function<void()>> job;
  bool done = false;
  bool quit = false;
  bool abandoned = false;
  /// The job now running, and its deadline brought forward, if it was.
  std::uint64_t job_number = 0;
  std::optional<std::chrono::steady_clock::time_point> cut;
};

handler_slot::~handler_slot() {
  if (!state_) {
    return;
  }
  {
    std::lock_guard<std::mutex> guard{state_->mutex};
    state_->quit = true;
  }
  state_->changed.notify_all();
  thread_.join();
}

void handler_slot::cut_deadline(std::uint64_t job, std::chrono::steady_clock::time_point at) {
  std::shared_ptr<shared> state;
  {
    std::lock_guard<std::mutex> guard{state_mutex_};
    state = state_;
  }
  if (!state) {
    return;
  }
  {
    std::lock_guard<std::mutex> guard{state->mutex};
    if (state->job_number != job || state->done) {
      return;  // that job returned already; the slot runs another one now
    }
    state->cut = state->cut ? std::min(*state->cut, at) : at;
  }
  state->changed.notify_all();
}

bool handler_slot::run(std::function<void()> job, std::chrono::steady_clock::time_point deadline,
                       const std::string& queue, const std::string& task) {
  ++jobs_;
  if (!state_) {
    std::lock_guard<std::mutex> guard{state_mutex_};
    state_ = std::make_shared<shared>();
    thread_ = std::thread{[state = state_, abandoned = abandoned_] {
      std::unique_lock<std::mutex> lock{state->mutex};
      for (;;) {
        state->changed.wait(lock, [&] { return state->quit || state->job; });
        if (!state->job) {
          return;  // quit, idle
        }
        auto next = std::move(*state->job);
        state->job.reset();
        lock.unlock();
        next();
        next = nullptr;  // what the handler held goes now, not at the next job
        lock.lock();
        state->done = true;
        if (state->abandoned) {
          lock.unlock();
          abandoned->returned();
          return;
        }
        state->changed.notify_all();
      }
    }};
  }
  std::unique_lock<std::mutex> lock{state_->mutex};
  state_->done = false;
  state_->job_number = jobs_;
  state_->cut.reset();
  state_->job = std::move(job);
  state_->changed.notify_all();
  for (;;) {
    auto seen = state_->cut;
    auto until = seen ? std::min(deadline, *seen) : deadline;
    if (state_->changed.wait_until(lock, until, [&] { return state_->done || state_->cut != seen; })) {
      if (state_->done) {
        return true;
      }
      continue;  // the deadline was brought forward: wait until the new one
    }
    break;
  }
  state_->abandoned = true;
  // Counted before the thread can see `abandoned` and report its return.
  abandoned_->add(queue, task);
  lock.unlock();
  thread_.detach();
  std::lock_guard<std::mutex> guard{state_mutex_};
  state_.reset();
  return false;
}

}  // namespace trellis::detail
