#pragma once

/// @file
/// The actor runtime of one Trellis process, built one way for both facades
/// (the embedded engine and a cluster node): a CAF actor system configured
/// as Trellis runs it, the supervisor with its children, and a bounded stop.
///
/// Stopping is drain first, then exit: the supervisor has the workers finish
/// the tasks in hand and report them, and the dispatcher commit what is
/// pending; then every actor stops and the system is joined. Whoever feeds
/// the actors (a transport) should be closed just before `stop`, so that idle
/// fetches wake at once instead of after their fetch wait.

#include "trellis/actors/supervisor.hpp"
#include "trellis/defaults.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

namespace trellis::detail {

/// How long a facade waits for one answer from an actor, and how long a
/// stop waits for the drain: `defaults::max_actor_answer_wait` and
/// `defaults::max_drain_wait`.
using defaults::max_actor_answer_wait;
using defaults::max_drain_wait;

/// A scoped_actor for one blocking exchange from a user thread. CAF 0.17
/// pins its logger in thread-local storage of every thread that creates a
/// scoped_actor, and the actor system's destructor waits for the logger to
/// die; without this release, destroying a runtime from a thread other than
/// the one that last called into it would hang forever.
class blocking_caller {
 public:
  explicit blocking_caller(caf::actor_system& sys) : self_(sys) {}
  ~blocking_caller();
  blocking_caller(const blocking_caller&) = delete;
  blocking_caller& operator=(const blocking_caller&) = delete;
  caf::scoped_actor& operator*() { return self_; }
  caf::scoped_actor& operator->() { return self_; }

 private:
  caf::scoped_actor self_;
};

/// One actor system and its supervisor. Thread-safe: `stop` may race the
/// destructor (a signal watcher), and the second caller waits for the first.
class actor_runtime {
 public:
  /// Starts the system and spawns the supervisor, which spawns its children.
  explicit actor_runtime(supervisor_config sup);
  /// Stops, if `stop` was not called.
  ~actor_runtime();
  actor_runtime(const actor_runtime&) = delete;
  actor_runtime& operator=(const actor_runtime&) = delete;

  caf::actor_system& system() { return *system_; }
  const supervisor_actor& supervisor() const { return supervisor_; }

  /// Drains (bounded by `max_drain_wait`), stops the supervisor and its
  /// children, calls `release_handles` (so the caller drops the actor
  /// handles it keeps: a handle alive past this point would keep the join
  /// waiting), and joins every actor, detached ones included. Only the first
  /// call does this; later calls return once it is done.
  void stop(const std::function<void()>& release_handles = {});

 private:
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  supervisor_actor supervisor_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace trellis::detail
