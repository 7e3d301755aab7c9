#pragma once

/// @file
/// One dispatcher actor (under its supervisor) on a real actor system and a
/// real SQLite store, with no worker pool: the test stands in for the workers
/// (it takes the task messages and reports their outcomes), so it can deliver
/// outcomes twice, late or malformed. `Bus` is the in-process transport or a
/// test's own transport around it (default-constructible, with the
/// `transport` interface).

#include "support/envelopes.hpp"

#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/inproc_transport.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace trellis::test {

template <class Bus = detail::inproc_transport>
class dispatcher_harness {
 public:
  /// Opens the store at `store_path` (":memory:" for none on disk) and starts
  /// the dispatcher, whose finished workflows and revocations are recorded
  /// and whose retry jitter is seeded. `configure` adjusts the dispatcher's
  /// configuration before it starts.
  explicit dispatcher_harness(const std::string& store_path,
                              std::function<void(detail::dispatcher_config&)> configure = {}) {
    detail::supervisor_config cfg;
    cfg.dispatcher.store = detail::sqlite_store::open(store_path);
    cfg.dispatcher.bus = bus;
    cfg.dispatcher.stats = stats;
    cfg.dispatcher.on_finished = [this](const detail::workflow_outcome& o) {
      std::lock_guard<std::mutex> guard{mutex_};
      finished_.push_back(o);
    };
    cfg.dispatcher.on_revoked = [this](const detail::control_request& notice) {
      std::lock_guard<std::mutex> guard{mutex_};
      revoked_.push_back(notice.workflow_id);
      notices_.push_back(notice);
    };
    cfg.dispatcher.jitter_seed = 1;
    if (configure) {
      configure(cfg.dispatcher);
    }
    sys_ = std::make_unique<caf::actor_system>(caf_cfg_);
    supervisor = detail::spawn_supervisor(*sys_, std::move(cfg));
    settle();  // the dispatcher has installed its event sink once it answers
  }

  ~dispatcher_harness() {
    {
      caf::scoped_actor self{*sys_};
      self->request(supervisor, caf::infinite, detail::drain_atom::value).receive([](bool) {}, [](caf::error&) {});
      self->send_exit(supervisor, caf::exit_reason::user_shutdown);
    }
    bus->close();
    // A scoped_actor pins CAF's logger to this thread (docs/architecture.md).
    caf::logger::set_current_actor_system(nullptr);
    sys_.reset();
  }

  dispatcher_harness(const dispatcher_harness&) = delete;
  dispatcher_harness& operator=(const dispatcher_harness&) = delete;

  /// The supervisor's current dispatcher (a new one after a kill).
  detail::dispatcher_actor dispatcher() {
    caf::scoped_actor self{*sys_};
    detail::dispatcher_actor d;
    self->request(supervisor, caf::infinite, detail::start_atom::value)
        .receive([&](detail::dispatcher_actor& x) { d = x; }, [](caf::error&) {});
    return d;
  }

  /// Submits `flow` as workflow `workflow_id`; the dispatcher's answer (the
  /// id), or empty when it refused.
  std::string submit(const canvas& flow, const std::string& workflow_id) {
    detail::envelope e;
    e.type = detail::envelope_type::submit;
    e.workflow_id = workflow_id;
    e.id = workflow_id + ":submit";
    e.payload = to_value(flow);
    std::string id;
    caf::scoped_actor self{*sys_};
    self->request(dispatcher(), caf::infinite, detail::submit_atom::value, detail::encode(e))
        .receive([&](std::string& x) { id = x; }, [](caf::error&) {});
    return id;
  }

  /// Submits `flow` under the next id of "wf-1", "wf-2", ...
  std::string submit(const canvas& flow) { return submit(flow, "wf-" + std::to_string(++submitted_)); }

  /// Commits and publishes everything the dispatcher has taken in so far.
  void settle() {
    caf::scoped_actor self{*sys_};
    self->request(dispatcher(), caf::infinite, detail::drain_atom::value).receive([](bool) {}, [](caf::error&) {});
  }

  /// Task messages currently waiting in the queues, decoded.
  std::vector<detail::envelope> take_tasks() {
    std::vector<detail::envelope> out;
    for (auto& d : bus->fetch_tasks({}, 1000, std::chrono::milliseconds{0})) {
      auto e = detail::decode(d.bytes);
      REQUIRE(e);
      out.push_back(*e);
    }
    return out;
  }

  /// Reports `task` succeeded with `result`, as a worker would.
  void report_success(const detail::envelope& task, value result) {
    auto out = outcome_envelope(task.id + ":out", {task.workflow_id, task.node, task.attempt, task.task},
                                detail::outcome_status::success, std::move(result), "", "");
    REQUIRE(bus->publish_events({{0, detail::encode(out)}}));
  }

  void kill(const detail::dispatcher_actor& d) {
    caf::scoped_actor self{*sys_};
    self->send_exit(d, caf::exit_reason::kill);
  }

  /// The workflows that finished so far, in order.
  std::vector<detail::workflow_outcome> finished() {
    std::lock_guard<std::mutex> guard{mutex_};
    return finished_;
  }

  /// The `revoked` notices sent so far, in order.
  std::vector<detail::control_request> revoke_notices() {
    std::lock_guard<std::mutex> guard{mutex_};
    return notices_;
  }

  /// The ids of the workflows revoked so far, in order.
  std::vector<std::string> revoked() {
    std::lock_guard<std::mutex> guard{mutex_};
    return revoked_;
  }

  std::shared_ptr<Bus> bus = std::make_shared<Bus>();
  std::shared_ptr<detail::metrics> stats = std::make_shared<detail::metrics>();
  detail::supervisor_actor supervisor;

 private:
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::mutex mutex_;
  std::vector<detail::workflow_outcome> finished_;
  std::vector<std::string> revoked_;
  std::vector<detail::control_request> notices_;
  int submitted_ = 0;
};

}  // namespace trellis::test
