#pragma once

/// @file
/// The supervisor: one per process. Spawns the dispatcher and the worker
/// pool, monitors them, and restarts one that dies with an error, with
/// exponential backoff (100 ms doubling to 5 s); a dispatcher whose store
/// failed is not restarted (dispatcher_config::on_store_failure). A restarted dispatcher
/// restores every unfinished workflow from the store, so a crash inside it
/// loses nothing that was committed. On `drain` it stops the workers first
/// (they finish the tasks in hand and report them), then has the dispatcher
/// commit what is pending, and replies.

#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/clock.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <optional>

namespace trellis::detail {

struct supervisor_config {
  dispatcher_config dispatcher;
  /// No dispatcher when false (a worker-only process, cluster mode); then
  /// `dispatcher` is unused and `start_atom` answers an invalid handle.
  bool run_dispatcher = true;
  /// No worker pool when unset (a dispatcher-only process).
  std::optional<worker_pool_config> workers;
  /// Where the supervisor reads the time (how long a child ran before it
  /// died). The system's clocks, unless a test runs it on virtual time; the
  /// dispatcher reads its own (`dispatcher.clock`).
  std::shared_ptr<const detail::clock> clock = system_clocks();
};

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg);

}  // namespace trellis::detail
