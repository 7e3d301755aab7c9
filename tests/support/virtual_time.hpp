#pragma once

/// @file
/// Virtual time for actor tests. An actor system on CAF 0.17's test
/// coordinator (`scheduler.policy` "testing") runs every actor on the test's
/// thread, only when the test says so, and delivers a delayed message only
/// when the test moves its clock past the message's time. `virtual_clock`
/// reads that same clock as the engine reads time (trellis/clock.hpp), so a
/// dispatcher or supervisor given it computes its due times from the time the
/// test moves. Nothing here waits for real time: a test runs what is due, and
/// a message that should have come either is in the mailbox or is not.

#include "trellis/clock.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/exit_reason.hpp>
#include <caf/expected.hpp>
#include <caf/logger.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace trellis::test {

/// The test coordinator's clock as the engine reads time.
class virtual_clock final : public detail::clock {
 public:
  /// Reads `epoch_at_start` (epoch ms) while `source` stands where it stands
  /// now, and moves with it.
  virtual_clock(const caf::detail::test_actor_clock& source, std::int64_t epoch_at_start)
      : source_(source), start_(source.current_time), epoch_at_start_(epoch_at_start) {}

  std::int64_t now_epoch_ms() const override {
    return epoch_at_start_ +
           std::chrono::duration_cast<std::chrono::milliseconds>(source_.current_time - start_).count();
  }

  std::chrono::steady_clock::time_point now_steady() const override { return source_.current_time; }

 private:
  const caf::detail::test_actor_clock& source_;
  std::chrono::steady_clock::time_point start_;
  std::int64_t epoch_at_start_;
};

/// An actor system on virtual time, and the clock to give the actors under test.
class virtual_time {
 public:
  /// Virtual time starts at this epoch instant (2026-01-01T00:00:00Z), so a
  /// stored time tells exactly how far it was moved.
  static constexpr std::int64_t epoch_at_start = 1767225600000;

  virtual_time()
      : sys_(std::make_unique<caf::actor_system>(configured(cfg_))),
        coordinator_(dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler())) {
    // Away from the clock's zero, as CAF's own test fixture does.
    coordinator_.clock().current_time += std::chrono::hours{1};
    clock = std::make_shared<virtual_clock>(coordinator_.clock(), epoch_at_start);
  }

  ~virtual_time() {
    run();
    // A scoped_actor pins CAF's logger to this thread (docs/architecture.md).
    caf::logger::set_current_actor_system(nullptr);
    sys_.reset();
  }

  virtual_time(const virtual_time&) = delete;
  virtual_time& operator=(const virtual_time&) = delete;

  caf::actor_system& system() { return *sys_; }

  /// Handles every message waiting, and every message that causes, until no
  /// actor has one left. Delivers no delayed message.
  std::size_t run() { return coordinator_.run(); }

  /// Moves virtual time forward by `by`, delivers the delayed messages due
  /// by then and runs everything. Returns how many delayed messages came.
  std::size_t advance(std::chrono::milliseconds by) {
    auto delivered = coordinator_.advance_time(by);
    run();
    return delivered;
  }

  /// Whether a delayed message is waiting for its time.
  bool has_delayed_message() const { return coordinator_.has_pending_timeout(); }

  /// Sends `xs` to `to` as a request, runs everything, and returns the
  /// answer, which must have come by then.
  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& to, Ts&&... xs) {
    caf::scoped_actor self{*sys_};
    auto request = self->request(to, caf::infinite, std::forward<Ts>(xs)...);
    run();
    REQUIRE(!self->mailbox().empty());  // else the receive below would wait for ever
    caf::expected<T> answer{caf::sec::unexpected_response};
    request.receive([&](T& x) { answer = std::move(x); }, [&](caf::error& e) { answer = std::move(e); });
    return answer;
  }

  /// Kills `who` (as a crash would), runs everything, and returns the exit
  /// reason it stopped with.
  template <class Handle>
  caf::error kill(const Handle& who) {
    caf::scoped_actor self{*sys_};
    self->monitor(who);
    self->send_exit(who, caf::exit_reason::kill);
    run();
    return stop_reason(self);
  }

  /// Runs everything with `who` monitored, and returns the reason it stopped
  /// with; fails the test if it is still running.
  template <class Handle>
  caf::error stopped(const Handle& who) {
    caf::scoped_actor self{*sys_};
    self->monitor(who);
    run();
    return stop_reason(self);
  }

  /// The clock to give the dispatcher and the supervisor.
  std::shared_ptr<const detail::clock> clock;

 private:
  static caf::actor_system_config& configured(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }

  /// The reason in the down message `self` has received, which must be in
  /// its mailbox already.
  static caf::error stop_reason(caf::scoped_actor& self) {
    caf::error reason;
    bool down = false;
    self->receive(
        [&](caf::down_msg& d) {
          down = true;
          reason = std::move(d.reason);
        },
        caf::after(std::chrono::seconds{0}) >> [] {});
    REQUIRE(down);
    return reason;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator& coordinator_;
};

}  // namespace trellis::test
