// The dispatcher actor itself: its behavior (which message goes to which
// part of `dispatcher_logic`), the transport sinks it installs at every
// (re)start, the restore before it takes messages, and how it stops when its
// store fails. The parts live in the dispatcher_*.cpp files listed in
// detail/dispatcher_logic.hpp.

#include "trellis/actors/detail/dispatcher_logic.hpp"

#include "trellis/actors/task_runner.hpp"

#include <caf/actor_system.hpp>

#include <exception>
#include <random>

namespace trellis::detail {

namespace {

dispatcher_actor::behavior_type dispatcher(dispatcher_pointer self, dispatcher_config cfg) {
  // Before anything that can throw (the restore below reads the store).
  // CAF's default handler would print on stdout, which belongs to the CLI's
  // JSON, and give a reason the supervisor cannot tell from a crash.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    try {
      std::rethrow_exception(x);
    } catch (const store_failure& f) {
      error failed{f.err.code(), "store failure: " + f.err.message()};
      if (self->state.cfg.on_store_failure) {
        self->state.cfg.on_store_failure(failed);
      }
      return to_caf_error(failed);
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
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), event_atom::value, std::move(bytes),
                     std::move(tokens));
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
    self->state.cfg.watch_lost_tasks(
        [weak = caf::actor_cast<caf::weak_actor_ptr>(self)](std::string bytes, std::int32_t deliveries,
                                                             std::uint64_t handle) {
          if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
            caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), lost_atom::value, std::move(bytes), deliveries,
                           handle);
          }
        });
  }
  dispatcher_logic(self).restore_all();
  return {
      [=](submit_atom, const std::string& bytes) { return dispatcher_logic(self).submit(bytes); },
      [=](submit_atom, const std::string& bytes, std::uint64_t token) {
        dispatcher_logic(self).submit_from_bus(bytes, token);
      },
      [=](event_atom, std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens) {
        dispatcher_logic(self).on_events(batch, tokens);
      },
      [=](flush_atom) {
        // Also the republish timer: a flush with no open batch retries what
        // the transport refused.
        self->state.republish_scheduled = false;
        dispatcher_logic(self).flush();
        // Here and not inside flush(): a flush in the middle of handling a
        // message (a full batch) must not drop the graph being worked on.
        dispatcher_logic(self).evict_idle();
      },
      [=](due_atom, const std::string& wf, std::int32_t node, std::int32_t attempt, std::uint64_t incarnation) {
        dispatcher_logic(self).on_due(wf, node, attempt, incarnation);
      },
      [=](lost_atom, const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
        dispatcher_logic(self).on_lost(bytes, deliveries, handle);
      },
      [=](control_atom, const std::string& bytes, std::uint64_t token) {
        dispatcher_logic(self).control(bytes, token);
      },
      [=](status_atom, const std::string& wf) { return dispatcher_logic(self).status(wf); },
      [=](replay_atom, std::int64_t id) { return dispatcher_logic(self).replay(id); },
      [=](restored_atom) { return self->state.restored; },
      [=](drain_atom) {
        dispatcher_logic(self).flush();
        dispatcher_logic(self).evict_idle();
        return true;
      },
  };
}

}  // namespace

dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_config cfg) {
  return sys.spawn<caf::detached>(dispatcher, std::move(cfg));
}

}  // namespace trellis::detail
