#include "trellis/actors/actor_runtime.hpp"
#include "trellis/log.hpp"

#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/logger.hpp>

namespace trellis::detail {

namespace {

/// CAF's own scheduler threads. The work is in the dispatcher's single
/// mailbox and in the worker pool's handler threads (detached), so two are
/// enough and more only add wake-ups.
constexpr int scheduler_threads = 2;

}  // namespace

blocking_caller::~blocking_caller() { caf::logger::set_current_actor_system(nullptr); }

actor_runtime::actor_runtime(supervisor_config sup) {
  caf_cfg_.set("scheduler.max-threads", scheduler_threads);
  caf_cfg_.set("logger.verbosity", caf::atom("quiet"));
  system_ = std::make_unique<caf::actor_system>(caf_cfg_);
  supervisor_ = spawn_supervisor(*system_, std::move(sup));
  caf::logger::set_current_actor_system(nullptr);  // see blocking_caller
}

actor_runtime::~actor_runtime() { stop(); }

void actor_runtime::stop(const std::function<void()>& release_handles) {
  std::lock_guard<std::mutex> guard{stop_mutex_};
  if (stopped_) {
    return;
  }
  stopped_ = true;
  {
    blocking_caller self{*system_};
    (*self)
        ->request(supervisor_, max_drain_wait, drain_atom::value)
        .receive(
            // false: the dispatcher was gone already (its store failed,
            // which its facade reported, or it was between restarts, and a
            // new one restores from the store); nothing is pending to commit.
            [](bool) {},
            [&](caf::error& e) {
              log::warn() << "the drain did not finish (" << system_->render(e)
                          << "); stopping anyway, and the tasks in hand run again after a restart";
            });
    (*self)->send_exit(supervisor_, caf::exit_reason::user_shutdown);
  }
  if (release_handles) {
    release_handles();
  }
  supervisor_ = nullptr;
  system_.reset();  // waits for every actor, detached ones included
}

}  // namespace trellis::detail
