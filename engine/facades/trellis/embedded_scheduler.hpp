#pragma once

/// @file
/// The thread that runs an embedded store's schedules inside its engine.
///
/// It owns a store connection of its own (beside the dispatcher's), a
/// `schedule_runner`, and a thread that runs a pass when something is due,
/// when the engine's API changed a schedule (`wake`), and at least every
/// `defaults::schedule_poll` (a `schedule` command from another process, a
/// buffered tick's previous run). `stop` ends the thread before the engine
/// drains, so no tick is submitted to an engine that is stopping.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "trellis/error.hpp"
#include "trellis/schedule_runner.hpp"

namespace trellis::detail {

class sqlite_store;

class embedded_scheduler {
 public:
  /// Opens its connection to `store_path` and starts the thread.
  embedded_scheduler(const std::string& store_path, schedule_runner::submit_fn submit,
                     std::function<std::int64_t()> now);
  ~embedded_scheduler();
  embedded_scheduler(const embedded_scheduler&) = delete;
  embedded_scheduler& operator=(const embedded_scheduler&) = delete;

  /// Runs `op` on the scheduler's store connection, between passes, then
  /// wakes the thread so the change takes effect at once.
  template <class T>
  T with_store(const std::function<T(sqlite_store&, std::int64_t now_ms)>& op) {
    T out = [&] {
      std::lock_guard<std::mutex> guard{mutex_};
      return op(*store_, now_());
    }();
    wake();
    return out;
  }

  /// Runs a pass soon.
  void wake();
  /// Ends the thread; idempotent.
  void stop();

 private:
  void loop();

  std::function<std::int64_t()> now_;
  std::unique_ptr<sqlite_store> store_;
  std::unique_ptr<schedule_runner> runner_;
  std::mutex mutex_;  // the store connection and the runner
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace trellis::detail
