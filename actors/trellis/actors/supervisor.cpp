#include "trellis/actors/supervisor.hpp"
#include "trellis/defaults.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>

namespace trellis::detail {

namespace {

constexpr auto first_backoff = std::chrono::milliseconds{100};
constexpr auto max_backoff = std::chrono::milliseconds{5000};
constexpr auto stable_after = std::chrono::seconds{30};

struct supervisor_state {
  static inline const char* name = "trellis.supervisor";
  supervisor_config cfg;
  dispatcher_actor dispatcher;
  worker_pool_actor workers;
  backoff dispatcher_backoff{first_backoff, max_backoff};
  backoff workers_backoff{first_backoff, max_backoff};
  std::chrono::steady_clock::time_point dispatcher_started;
  std::chrono::steady_clock::time_point workers_started;
  bool draining = false;
};

using supervisor_pointer = supervisor_actor::stateful_pointer<supervisor_state>;

/// Whether `reason` is a dispatcher's store failure (see dispatcher_config::on_store_failure).
bool is_store_failure(const caf::error& reason) {
  if (reason.category() != trellis_error_category) {
    return false;
  }
  auto code = static_cast<errc>(reason.code());
  return code == errc::store_failed || code == errc::store_corrupt || code == errc::store_locked;
}

void start_dispatcher(supervisor_pointer self) {
  if (!self->state.cfg.run_dispatcher) {
    return;
  }
  self->state.dispatcher = spawn_dispatcher(self->system(), self->state.cfg.dispatcher);
  self->state.dispatcher_started = self->state.cfg.clock->now_steady();
  self->monitor(self->state.dispatcher);
}

void start_workers(supervisor_pointer self) {
  if (self->state.cfg.workers) {
    self->state.workers = spawn_worker_pool(self->system(), *self->state.cfg.workers);
    self->state.workers_started = self->state.cfg.clock->now_steady();
    self->monitor(self->state.workers);
  }
}

supervisor_actor::behavior_type supervisor(supervisor_pointer self, supervisor_config cfg) {
  self->state.cfg = std::move(cfg);
  start_dispatcher(self);
  start_workers(self);
  self->set_down_handler([=](caf::down_msg& down) {
    auto& st = self->state;
    if (st.draining || down.reason == caf::exit_reason::normal) {
      return;
    }
    if (down.source == st.dispatcher.address() && is_store_failure(down.reason)) {
      // Not restarted: its store refuses writes, and a new dispatcher would
      // publish again, and so run again, the tasks whose outcomes it could
      // not commit. The dispatcher has told its facade (on_store_failure).
      return;
    }
    // Restart with backoff so a dispatcher that fails at once (a store that
    // stays broken) does not spin; a child that ran well for a while before
    // failing starts from the first backoff again.
    auto now = st.cfg.clock->now_steady();
    if (now - st.dispatcher_started > stable_after) {
      st.dispatcher_backoff.reset();
    }
    if (now - st.workers_started > stable_after) {
      st.workers_backoff.reset();
    }
    if (down.source == st.dispatcher.address()) {
      self->delayed_send(self, st.dispatcher_backoff.next(), restart_atom::value, true);
    } else if (down.source == st.workers.address()) {
      self->delayed_send(self, st.workers_backoff.next(), restart_atom::value, false);
    }
  });
  return {
      [=](start_atom) { return self->state.dispatcher; },
      [=](restart_atom, bool dispatcher) {
        if (self->state.draining) {
          return;
        }
        if (dispatcher) {
          start_dispatcher(self);
        } else {
          start_workers(self);
        }
      },
      [=](drain_atom) -> caf::result<bool> {
        auto& st = self->state;
        st.draining = true;
        auto rp = self->make_response_promise<bool>();
        // Children are monitored, not linked (a crash must restart them, not
        // take the supervisor down), so they are stopped explicitly.
        auto stop_children = [=] {
          if (self->state.dispatcher) {
            self->send_exit(self->state.dispatcher, caf::exit_reason::user_shutdown);
          }
          if (self->state.workers) {
            self->send_exit(self->state.workers, caf::exit_reason::user_shutdown);
          }
        };
        auto drain_dispatcher = [=]() mutable {
          if (!self->state.dispatcher) {
            stop_children();
            rp.deliver(true);
            return;
          }
          self->request(self->state.dispatcher, defaults::max_drain_wait, drain_atom::value)
              .then(
                  [=](bool) mutable {
                    stop_children();
                    rp.deliver(true);
                  },
                  [=](caf::error&) mutable {
                    stop_children();
                    rp.deliver(false);
                  });
        };
        if (st.workers) {
          self->request(st.workers, defaults::max_drain_wait, drain_atom::value)
              .then([=](bool) mutable { drain_dispatcher(); }, [=](caf::error&) mutable { drain_dispatcher(); });
        } else {
          drain_dispatcher();
        }
        return rp;
      },
  };
}

}  // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg) {
  return sys.spawn(supervisor, std::move(cfg));
}

}  // namespace trellis::detail
