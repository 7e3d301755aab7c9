// The dispatcher actor itself: its behavior (which message goes to which
// part of `dispatcher_logic`), the transport sinks it installs at every
// (re)start, the restore before it takes messages, and how it stops when its
// store fails. The parts live in the dispatcher_*.cpp files listed in
// detail/dispatcher_logic.hpp.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/actors/task_runner.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/defaults.hpp>

#include <exception>
#include <random>
#include <type_traits>

namespace trellis::detail {

namespace {

/// Stops the dispatcher for good with its store's failure as the exit
/// reason, after telling the facade (dispatcher_config::on_store_failure).
/// The supervisor reads the reason and does not restart it (supervisor.cpp):
/// a new dispatcher would run again the tasks whose outcomes could not be
/// committed. Returns the reason, which answers the request being handled.
caf::error stop_for_store_failure(dispatcher_pointer self, const error& why) {
  error failed{why.code(), "store failure: " + why.message()};
  if (self->state.cfg.on_store_failure) {
    self->state.cfg.on_store_failure(failed);
  }
  auto reason = to_caf_error(failed);
  self->quit(reason);
  return reason;
}

/// Handles one message with `handle`. A store failure anywhere inside it
/// (thrown by `dispatcher_logic::check`, however deep) skips the rest of the
/// message's work and stops the dispatcher; nothing after the failed store
/// call is published, acked or answered, except the error to a requester.
template <class Handle>
auto stopping_on_store_failure(dispatcher_pointer self, Handle handle) -> decltype(handle()) {
  try {
    return handle();
  } catch (const store_failure& failure) {
    auto reason = stop_for_store_failure(self, failure.err);
    if constexpr (!std::is_void_v<decltype(handle())>) {
      return reason;
    }
  }
}

dispatcher_actor::behavior_type dispatcher(dispatcher_pointer self, dispatcher_config cfg) {
  // For defects only: a store failure stops the dispatcher through
  // `stopping_on_store_failure`. CAF's default handler would print on
  // stdout, which belongs to the CLI's JSON, and give a reason the
  // supervisor cannot tell from a crash.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    try {
      std::rethrow_exception(x);
    } catch (const store_failure& f) {
      // Not reached while every handler runs under stopping_on_store_failure;
      // one added without it must still stop for good, not be restarted.
      return stop_for_store_failure(self, f.err);
    } catch (const std::exception& e) {
      return to_caf_error(error{errc::task_failed, std::string{"dispatcher failed: "} + e.what()});
    } catch (...) {
      return to_caf_error(error{errc::task_failed, "dispatcher failed: unknown exception"});
    }
  });
  self->state.cfg = std::move(cfg);
  self->state.rng.seed(self->state.cfg.jitter_seed != 0 ? self->state.cfg.jitter_seed : std::random_device{}());
  // A previous incarnation may have died inside a transaction.
  self->state.cfg.store->rollback();
  self->state.cfg.bus->consume_events([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](std::vector<delivery> batch) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      std::vector<std::string> bytes;
      std::vector<std::uint64_t> tokens;
      bytes.reserve(batch.size());
      tokens.reserve(batch.size());
      for (auto& d : batch) {
        // A refused event (unsigned, badly signed) is not applied: it
        // becomes the outcome that dead-letters its bytes with the reason.
        bytes.push_back(d.refused ? encode(poison_outcome(d.bytes, *d.refused)) : std::move(d.bytes));
        tokens.push_back(d.token);
      }
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), event_atom::value, std::move(bytes), std::move(tokens));
    }
  });
  self->state.cfg.bus->consume_control([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](delivery d) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), control_atom::value, std::move(d.bytes), d.token);
    }
  });
  self->state.cfg.bus->consume_submissions([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](delivery d) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), submit_atom::value, std::move(d.bytes), d.token);
    }
  });
  if (self->state.cfg.watch_lost_tasks) {
    self->state.cfg.watch_lost_tasks([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](
                                         std::string bytes, std::int32_t deliveries, std::uint64_t handle) {
      if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
        caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), lost_atom::value, std::move(bytes), deliveries,
                       handle);
      }
    });
  }
  try {
    dispatcher_logic(self).restore_all();
    // The first sweep comes right after the restore: a store that was
    // closed for a while may hold much that expired meanwhile.
    dispatcher_logic(self).schedule_expiry(std::chrono::milliseconds{0});
  } catch (const store_failure& failure) {
    // Stopped before taking a message: no behavior, the exit reason says why.
    stop_for_store_failure(self, failure.err);
    return {dispatcher_actor::behavior_type::unsafe_init{}, caf::behavior{}};
  }
  return {
      [=](submit_atom, const std::string& bytes) {
        return stopping_on_store_failure(self, [&] { return dispatcher_logic(self).submit(bytes); });
      },
      [=](submit_atom, const std::string& bytes, std::uint64_t token) {
        stopping_on_store_failure(self, [&] { dispatcher_logic(self).submit_from_bus(bytes, token); });
      },
      [=](event_atom, std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens) {
        stopping_on_store_failure(self, [&] { dispatcher_logic(self).on_events(batch, tokens); });
      },
      [=](flush_atom) {
        stopping_on_store_failure(self, [&] {
          // Also the republish timer: a flush with no open batch retries what
          // the transport refused.
          self->state.republish_scheduled = false;
          dispatcher_logic(self).flush();
          // Here and not inside flush(): a flush in the middle of handling a
          // message (a full batch) must not drop the graph being worked on.
          dispatcher_logic(self).evict_idle();
        });
      },
      [=](due_atom, const std::string& wf, std::int32_t node, std::int32_t attempt, std::uint64_t incarnation) {
        stopping_on_store_failure(self, [&] { dispatcher_logic(self).on_due(wf, node, attempt, incarnation); });
      },
      [=](lost_atom, const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
        stopping_on_store_failure(self, [&] { dispatcher_logic(self).on_lost(bytes, deliveries, handle); });
      },
      [=](control_atom, const std::string& bytes, std::uint64_t token) {
        stopping_on_store_failure(self, [&] { dispatcher_logic(self).control(bytes, token); });
      },
      [=](status_atom, const std::string& wf) {
        return stopping_on_store_failure(self, [&] { return dispatcher_logic(self).status(wf); });
      },
      [=](replay_atom, std::int64_t id) {
        return stopping_on_store_failure(self, [&] { return dispatcher_logic(self).replay(id); });
      },
      [=](expire_atom) { stopping_on_store_failure(self, [&] { dispatcher_logic(self).expire(); }); },
      [=](expire_atom, std::int64_t older_than_ms) {
        return stopping_on_store_failure(self, [&] { return dispatcher_logic(self).prune(older_than_ms); });
      },
      [=](forget_atom, const std::string& wf) {
        return stopping_on_store_failure(self, [&] { return dispatcher_logic(self).forget(wf); });
      },
      [=](restored_atom) { return self->state.restored; },
      [=](drain_atom) {
        return stopping_on_store_failure(self, [&]() -> caf::result<bool> {
          dispatcher_logic(self).flush();
          dispatcher_logic(self).evict_idle();
          return true;
        });
      },
  };
}

}  // namespace

dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_config cfg) {
  // CAF's test coordinator (the tests on virtual time) runs every actor on
  // the test's thread, one message at a time as the test asks; a detached
  // actor would run beside it and race its job queue and clock.
  if (caf::get_or(sys.config(), "scheduler.policy", caf::defaults::scheduler::policy) == caf::atom("testing")) {
    return sys.spawn(dispatcher, std::move(cfg));
  }
  return sys.spawn<caf::detached>(dispatcher, std::move(cfg));
}

}  // namespace trellis::detail
