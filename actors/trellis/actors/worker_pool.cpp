#include "trellis/actors/worker_pool.hpp"

#include "trellis/actors/handler_slot.hpp"
#include "trellis/actors/process_pool.hpp"
#include "trellis/actors/progress_reporter.hpp"
#include "trellis/actors/task_runner.hpp"
#include "trellis/clock.hpp"
#include "trellis/defaults.hpp"
#include "trellis/envelope.hpp"
#include "trellis/transport/partition.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;

// Outcomes of quick tasks are reported together; a slow task's outcome must
// not wait behind the rest of its batch for longer than this.
constexpr auto max_outcome_delay = std::chrono::milliseconds{2};
constexpr auto fetch_wait = std::chrono::milliseconds{100};
// Pacing of outcome reports the broker refused (no stream leader during a
// failover, a restarting server); the broker coming back is the condition.
constexpr auto first_report_retry = std::chrono::milliseconds{50};
constexpr auto max_report_retry = std::chrono::milliseconds{1000};

/// The task messages (by id: workflow, node, attempt) this process runs or
/// ran, so that a second delivery of one attempt is not run again while the
/// first is running or once its outcome is reported. Copies come from a
/// dispatcher restart: a restore publishes every ready task again, and the
/// broker drops a copy only when its first one went out alone under the
/// same id within the dedup window; one that went in a pack, or longer ago,
/// arrives as a message of its own. The default idempotency key
/// `<workflow>/<node>` names the node across attempts; together with the
/// attempt it is this id, so the key holds for every delivery that meets
/// its twin in this process. Copies that reach different processes both
/// run: the dispatcher's once-only guard keeps the state right, and the
/// handler passes ctx.idempotency_key() to what it changes.
///
/// A copy is acked unrun only once the first one's outcome is stored
/// (published): until then the first is unacked and the broker would
/// deliver it again, and an outcome that is never published gives the claim
/// up, so that a redelivery (which carries the same id) runs.
class task_claims {
 public:
  /// Claims `id` for the calling thread: true (run it) when no thread of
  /// this process holds it, false (a duplicate: do not run, do not report)
  /// when its outcome was reported. While another thread holds it
  /// unreported, it calls `report_own` first, which must report (or give up)
  /// every claim of the caller, so that two threads never wait for each
  /// other, then waits until the holder reports or gives up.
  bool claim(const std::string& id, const std::function<void()>& report_own) {
    std::unique_lock<std::mutex> lock{mutex_};
    if (auto state = try_claim(id)) {
      return *state == claim_result::claimed;
    }
    lock.unlock();
    report_own();
    lock.lock();
    for (;;) {
      if (auto state = try_claim(id)) {
        return *state == claim_result::claimed;
      }
      changed_.wait(lock);
    }
  }

  /// The outcomes of `ids` are stored: later deliveries of them are
  /// duplicates. The most recent `remembered` are kept.
  void reported(const std::vector<std::string>& ids) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      for (const auto& id : ids) {
        if (auto it = claims_.find(id); it != claims_.end() && !it->second) {
          it->second = true;
          order_.push_back(&it->first);  // element keys stay put until erased
        }
      }
      while (order_.size() > remembered) {
        claims_.erase(claims_.find(*order_.front()));
        order_.pop_front();
      }
    }
    changed_.notify_all();
  }

  /// The outcomes of `ids` were not published (draining, a refusal): their
  /// messages stay unacked and come again, and must run then.
  void given_up(const std::vector<std::string>& ids) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      for (const auto& id : ids) {
        if (auto it = claims_.find(id); it != claims_.end() && !it->second) {
          claims_.erase(it);
        }
      }
    }
    changed_.notify_all();
  }

 private:
  enum class claim_result { claimed, duplicate };

  /// Under the lock: claims `id` if free, says duplicate if reported,
  /// nothing while another thread holds it unreported.
  std::optional<claim_result> try_claim(const std::string& id) {
    auto [it, inserted] = claims_.try_emplace(id, false);
    if (inserted) {
      return claim_result::claimed;
    }
    if (it->second) {
      return claim_result::duplicate;
    }
    return std::nullopt;
  }

  // A copy comes soon after a restart, while the first ran shortly before
  // it: this many ids (a few MiB) cover five minutes at 100 tasks a second.
  static constexpr std::size_t remembered = 32'768;

  std::mutex mutex_;
  std::condition_variable changed_;
  /// Claimed ids: false while running or unreported, true once reported.
  std::unordered_map<std::string, bool> claims_;
  /// Reported ids, oldest first (keys of `claims_`).
  std::deque<const std::string*> order_;
};

class handler_threads {
 public:
  explicit handler_threads(worker_pool_config cfg)
      : cfg_(std::move(cfg)),
        abandoned_(std::make_shared<abandoned_handlers>(cfg_.max_abandoned_handlers, cfg_.stats)),
        progress_(std::make_shared<progress_reporter>(cfg_.bus, cfg_.partitions)) {
    progress_->start(cfg_.progress_interval);
    auto n = std::max<std::size_t>(1, cfg_.concurrency);
    for (std::size_t i = 0; i < n; ++i) {
      slots_.push_back(std::make_unique<handler_slot>(abandoned_));
    }
    for (std::size_t i = 0; i < n; ++i) {
      threads_.emplace_back([this, i] { loop(i); });
    }
  }
  ~handler_threads() { stop(); }
  handler_threads(const handler_threads&) = delete;
  handler_threads& operator=(const handler_threads&) = delete;

  /// Lets every thread finish the task in hand (a time-limited one until
  /// its limit at most) and hand the rest of its batch back, then joins
  /// them and the slots' idle handler threads. Abandoned handlers are not
  /// waited for: they run on, detached, until they return or the process
  /// exits.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{pause_mutex_};
      stopping_ = true;
    }
    paused_.notify_all();
    abandoned_->wake();
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
    threads_.clear();
    slots_.clear();
    progress_->stop();
  }

 private:
  void loop(std::size_t slot) {
    std::vector<outgoing_event> outcomes;
    std::vector<delivery> handled;
    std::vector<std::string> claimed;  // ids of `handled` this thread claimed
    run_hooks hooks;
    hooks.claim = [this, &outcomes, &handled, &claimed](const envelope& task) {
      if (!claims_.claim(task.id, [&] { report(outcomes, handled, claimed); })) {
        return false;
      }
      claimed.push_back(task.id);
      return true;
    };
    if (auto activity = cfg_.activity) {
      hooks.is_revoked = [activity](const std::string& wf, std::int32_t node) {
        return activity->is_revoked(wf, node);
      };
      hooks.on_start = [this, activity, slot](const envelope& task, const stop_source& stop) {
        active_task running;
        running.task = task.task;
        running.workflow_id = task.workflow_id;
        running.node = task.node;
        running.attempt = task.attempt;
        running.started_at = now_epoch_ms();
        // A revoke with terminate: the stop token now; a handler with a
        // hard limit runs on the slot's handler thread, which is abandoned
        // after the grace period if the handler has not returned by then.
        auto* handler = slots_[slot].get();
        if (auto processes = cfg_.processes) {
          // In a child the stop token cannot reach the handler: the child
          // is killed at once (docs/operations.md, "Process pool").
          running.terminate = [processes, slot, job = processes->next_job(slot)] {
            processes->terminate(slot, job);
          };
        } else {
          running.terminate = [stop, handler, job = handler->next_job()] {
            stop_source{stop}.request_stop();
            handler->cut_deadline(job, clock::now() + defaults::terminate_grace);
          };
        }
        activity->started(slot, std::move(running));
      };
    }
    std::shared_ptr<progress_sink> reporting;  // of the attempt this thread runs
    if (cfg_.bus->announces_lifecycle()) {
      hooks.started = [this](const envelope& task) {
        cfg_.bus->announce_lifecycle({lifecycle_event{lifecycle_kind::started, task.workflow_id, task.node, task.task,
                                                      task.attempt, now_epoch_ms(), value{}}});
      };
    }
    hooks.progress = [this, &reporting](const envelope& task) {
      reporting = progress_->open(task);
      return reporting;
    };
    hooks.pace = [this, &outcomes, &handled, &claimed](const envelope& task, const rate_limit_spec& rate) {
      // What this thread ran before is reported before a wait, so that a
      // slot far away holds back no other task's outcome. The task in hand
      // (claimed last) is not reported: it has not run.
      if (!claimed.empty() && claimed.back() == task.id) {
        claimed.pop_back();
        report(outcomes, handled, claimed);
        claimed.push_back(task.id);
      }
      return pace(task.queue, task.task, rate);
    };
    hooks.run_limited = [this, slot](const envelope& task, std::function<void()> job, clock::time_point deadline) {
      return slots_[slot]->run(std::move(job), deadline, task.queue, task.task);
    };
    if (auto processes = cfg_.processes) {
      hooks.run_in_child = [processes, slot](const envelope& task, const child_request& request,
                                             std::optional<clock::time_point> deadline,
                                             const std::shared_ptr<progress_sink>& progress) {
        return processes->run(slot, request, task.queue, deadline, progress);
      };
    }
    while (!stopping_) {
      if (cfg_.processes && cfg_.processes->failed()) {
        // No child can run a task: take none (the process exits; see
        // cluster_node's take_over), rather than fetch and hand back.
        pause(std::chrono::duration_cast<std::chrono::microseconds>(fetch_wait).count());
        continue;
      }
      if (abandoned_->at_bound()) {
        // Too many overrun handlers still hold their threads: take nothing
        // until one returns (or the drain), so that they cannot pile up.
        abandoned_->wait_below_bound(stopping_);
        continue;
      }
      auto batch = cfg_.bus->fetch_tasks(cfg_.queues, cfg_.fetch_batch, fetch_wait);
      auto last_report = clock::now();
      // What the transport carries and the dispatcher reads.
      auto max_outcome = std::min(cfg_.bus->max_message_bytes(), max_outcome_message_bytes(cfg_.limits));
      for (auto& d : batch) {
        if (stopping_ || abandoned_->at_bound()) {
          // Draining, or at the bound of abandoned handlers: what was
          // fetched but not started is handed back; the store (embedded) or
          // the broker (cluster, at once) gives it to the next worker.
          cfg_.bus->release_task(d);
          continue;
        }
        auto started = clock::now();
        // A message the transport refused (unsigned, badly signed) is not
        // run: its bytes go to the dead-letter store with the reason.
        auto run = d.refused ? task_run{poison_outcome(d.bytes, *d.refused), "", std::nullopt}
                             : run_task_message(d.bytes, *cfg_.tasks, hooks, cfg_.limits);
        if (cfg_.activity) {
          cfg_.activity->finished(slot);
        }
        if (run.handed_back) {
          // Stopped while it waited for its rate-limit slot: not run, so
          // another delivery of it must run (the slot is wasted).
          if (!claimed.empty()) {
            claims_.given_up({claimed.back()});
            claimed.pop_back();
          }
          cfg_.bus->release_task(d);
          continue;
        }
        if (run.duplicate) {
          // Its twin ran here and its outcome is stored: nothing to report.
          cfg_.bus->ack_task(d);
          continue;
        }
        if (run.queue_wait) {
          cfg_.stats->observe(histogram::queue_wait, run.queue, run.outcome.task, *run.queue_wait);
        }
        // The attempt's last progress report goes out before its outcome,
        // so that the dispatcher stores it while the attempt still runs.
        if (auto last = progress_->close(reporting)) {
          outcomes.push_back(std::move(*last));
        }
        reporting.reset();
        auto partition = event_partition_of(run.outcome.workflow_id, cfg_.partitions);
        auto bytes = encode(run.outcome);
        if (bytes.size() > max_outcome) {
          bytes = encode(oversized_outcome(std::move(run.outcome), bytes.size(), max_outcome));
        }
        outcomes.push_back(outgoing_event{partition, std::move(bytes)});
        handled.push_back(std::move(d));
        if (clock::now() - last_report > max_outcome_delay || clock::now() - started > max_outcome_delay) {
          report(outcomes, handled, claimed);
          last_report = clock::now();
        }
      }
      report(outcomes, handled, claimed);
    }
  }

  /// Waits until a start of `task` under `rate` is due: reserves its slot
  /// (transport::reserve_start, shared by every worker of the namespace)
  /// and sleeps until it comes. While the gate cannot be reached (the
  /// broker is away) it tries again with backoff, never starting the task
  /// without a slot; the transport keeps the delivery in hand alive
  /// meanwhile. False when the worker stops first.
  bool pace(const std::string& queue, const std::string& task, const rate_limit_spec& rate) {
    backoff pauses{first_report_retry, max_report_retry};
    std::optional<std::int64_t> slot;
    while (!slot) {
      if (stopping_) {
        return false;
      }
      auto reserved = cfg_.bus->reserve_start(task, rate.interval_us());
      if (reserved) {
        slot = *reserved;
      } else {
        cfg_.stats->add(counter::rate_limit_gate_errors, queue, task, 1);
        pause(std::chrono::duration_cast<std::chrono::microseconds>(pauses.next()).count());
      }
    }
    auto wait_us = *slot - now_epoch_us();
    if (wait_us > 0) {
      cfg_.stats->observe(histogram::rate_limit_wait, queue, task, static_cast<double>(wait_us) / 1e6);
    }
    while (!stopping_ && (wait_us = *slot - now_epoch_us()) > 0) {
      pause(wait_us);
    }
    return !stopping_;
  }

  /// Sleeps up to `us` microseconds, or until `stop()`.
  void pause(std::int64_t us) {
    std::unique_lock<std::mutex> lock{pause_mutex_};
    paused_.wait_for(lock, std::chrono::microseconds{us}, [this] { return stopping_.load(); });
  }

  /// Publishes `outcomes`, then acks `handled` and settles `claimed` (see
  /// task_claims); all three are empty afterwards.
  void report(std::vector<outgoing_event>& outcomes, std::vector<delivery>& handled,
              std::vector<std::string>& claimed) {
    if (outcomes.empty()) {
      return;
    }
    // Ack only once the outcome is handed over: a worker dying in between
    // leaves the task unacked, and it is delivered again.
    //
    // While the broker is away the outcomes are kept and published again,
    // and the tasks are marked in progress so that JetStream neither runs
    // them again elsewhere nor counts the outage against MaxDeliver (which
    // would end in "worker lost"). Draining gives up: the tasks stay
    // unacked and are delivered again. Any other failure is not waited out
    // either (an outcome too large was replaced before, see
    // oversized_outcome; only a transport that refuses what it said it
    // carries gets here).
    backoff pauses{first_report_retry, max_report_retry};
    for (;;) {
      auto published = cfg_.bus->publish_events(outcomes);
      if (published) {
        for (const auto& d : handled) {
          cfg_.bus->ack_task(d);
        }
        claims_.reported(claimed);
        break;
      }
      if (published.error().code() != errc::broker_unavailable || stopping_) {
        claims_.given_up(claimed);
        break;
      }
      for (const auto& d : handled) {
        cfg_.bus->touch_task(d);
      }
      std::this_thread::sleep_for(pauses.next());
    }
    outcomes.clear();
    handled.clear();
    claimed.clear();
  }

  worker_pool_config cfg_;
  task_claims claims_;
  std::atomic<bool> stopping_{false};
  /// Rate-limit waits (pace) sleep on these; stop() wakes them.
  std::mutex pause_mutex_;
  std::condition_variable paused_;
  std::shared_ptr<abandoned_handlers> abandoned_;
  std::shared_ptr<progress_reporter> progress_;
  /// One per thread of `threads_`, which use them; cleared after the join.
  std::vector<std::unique_ptr<handler_slot>> slots_;
  std::vector<std::thread> threads_;
};

struct worker_pool_state {
  static inline const char* name = "trellis.worker_pool";
  std::unique_ptr<handler_threads> threads;
};

worker_pool_actor::behavior_type worker_pool(worker_pool_actor::stateful_pointer<worker_pool_state> self,
                                             worker_pool_config cfg) {
  self->state.threads = std::make_unique<handler_threads>(std::move(cfg));
  return {
      [=](drain_atom) {
        // Detached actor: joining here blocks only this actor's own thread.
        self->state.threads->stop();
        return true;
      },
  };
}

}  // namespace

worker_pool_actor spawn_worker_pool(caf::actor_system& sys, worker_pool_config cfg) {
  return sys.spawn<caf::detached>(worker_pool, std::move(cfg));
}

}  // namespace trellis::detail
