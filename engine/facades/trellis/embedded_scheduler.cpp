#include "trellis/embedded_scheduler.hpp"

#include "trellis/defaults.hpp"
#include "trellis/log.hpp"
#include "trellis/store/sqlite_store.hpp"

#include <algorithm>
#include <chrono>

namespace trellis::detail {

embedded_scheduler::embedded_scheduler(const std::string& store_path, schedule_runner::submit_fn submit,
                                       std::function<std::int64_t()> now)
    : now_(std::move(now)), store_(sqlite_store::open(store_path)),
      runner_(std::make_unique<schedule_runner>(*store_, std::move(submit))) {
  thread_ = std::thread([this] { loop(); });
}

embedded_scheduler::~embedded_scheduler() { stop(); }

void embedded_scheduler::wake() {
  {
    std::lock_guard<std::mutex> guard{wake_mutex_};
    woken_ = true;
  }
  wake_cv_.notify_all();
}

void embedded_scheduler::stop() {
  {
    std::lock_guard<std::mutex> guard{wake_mutex_};
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void embedded_scheduler::loop() {
  for (;;) {
    std::chrono::milliseconds wait = defaults::schedule_poll;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      const auto now = now_();
      try {
        auto next = runner_->run_due(now);
        if (!next) {
          log::warn() << "scheduler: " << to_string(next.error()) << "; trying again";
        } else if (*next && **next > now) {
          wait = std::min(wait, std::chrono::milliseconds{**next - now});
        } else if (*next) {
          wait = std::chrono::milliseconds{0};
        }
      } catch (const std::exception& e) {
        // A statement that cannot even be prepared (a store gone bad): the
        // scheduler keeps trying, the dispatcher reports the store itself.
        log::warn() << "scheduler: " << e.what() << "; trying again";
      }
    }
    std::unique_lock<std::mutex> lock{wake_mutex_};
    wake_cv_.wait_for(lock, wait, [this] { return woken_ || stopping_; });
    if (stopping_) return;
    woken_ = false;
  }
}

}  // namespace trellis::detail
