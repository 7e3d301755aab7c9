#include "trellis/engine.hpp"

#include "trellis/actors/actor_runtime.hpp"
#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/clock.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/embedded_scheduler.hpp"
#include "trellis/envelope.hpp"
#include "trellis/http/event_hub.hpp"
#include "trellis/http/http_server.hpp"
#include "trellis/metrics.hpp"
#include "trellis/operator_views.hpp"
#include "trellis/outcome_result.hpp"
#include "trellis/prometheus_merge.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_lock.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/inproc_transport.hpp"
#include "trellis/workflow_listing.hpp"

#include <caf/sec.hpp>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace trellis {

namespace detail {

/// Where a finished workflow's outcome meets whoever waits for it.
struct completion_slot {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  workflow_outcome outcome;
  /// Set when the engine stopped before the workflow finished (its store
  /// failed): waiting is over, but the workflow is not.
  std::optional<error> halted;

  void halt(const error& why) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (done || halted) {
        return;
      }
      halted = why;
    }
    done_cv.notify_all();
  }

  void fill(const workflow_outcome& o) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (done) {
        return;
      }
      outcome = o;
      done = true;
    }
    done_cv.notify_all();
  }
};

/// Slots by workflow id. Holds them weakly: a workflow nobody waits for
/// leaves nothing behind in memory.
class completion_board {
 public:
  std::shared_ptr<completion_slot> watch(const std::string& id) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto& weak = slots_[id];
    auto slot = weak.lock();
    if (!slot) {
      slot = std::make_shared<completion_slot>();
      weak = slot;
    }
    if (halted_) {
      slot->halt(*halted_);
    }
    return slot;
  }

  /// Ends every wait, present and future, with `why`.
  void halt(const error& why) {
    std::vector<std::shared_ptr<completion_slot>> waiting;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      halted_ = why;
      for (auto& [id, weak] : slots_) {
        if (auto slot = weak.lock()) {
          waiting.push_back(std::move(slot));
        }
      }
    }
    for (auto& slot : waiting) {
      slot->halt(why);
    }
  }

  /// The error that stopped the engine, if one did.
  std::optional<error> halted() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return halted_;
  }

  void complete(const workflow_outcome& o) {
    std::shared_ptr<completion_slot> slot;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      auto i = slots_.find(o.id);
      if (i == slots_.end()) {
        return;
      }
      slot = i->second.lock();
      slots_.erase(i);
    }
    if (slot) {
      slot->fill(o);
    }
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<completion_slot>> slots_;
  std::optional<error> halted_;
};

/// What a call reports when the dispatcher did not answer within
/// `max_actor_answer_wait`: the workflow may still be committed.
static error no_answer_in_time() {
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(max_actor_answer_wait).count();
  return error{errc::timeout, "the engine's dispatcher did not answer within " + std::to_string(seconds) +
                                  " s (a very large workflow being committed, or a stalled store)"};
}

class engine_core {
 public:
  engine_core(engine_config cfg, task_registry tasks)
      : cfg_(std::move(cfg)), tasks_(std::make_shared<const task_registry>(std::move(tasks))) {
    if (auto ok = validate(cfg_); !ok) {
      throw setup_error(ok.error().code(), ok.error().message());
    }
    if (cfg_.store_path != ":memory:") {
      // One process per store: a second one would run the same workflows.
      auto lock = store_lock::try_acquire(cfg_.store_path, "embedded engine");
      if (!lock) {
        auto why = lock.error().code() == errc::store_locked
                       ? lock.error().message() + "; stop that process first, or let it finish this store's work"
                       : lock.error().message();
        throw setup_error(lock.error().code(), why);
      }
      lock_.emplace(std::move(*lock));
    }
    store_options opts;
    opts.synchronous = cfg_.synchronous;
    std::shared_ptr<sqlite_store> store = sqlite_store::open(cfg_.store_path, opts);

    supervisor_config sup;
    sup.dispatcher.store = std::move(store);
    sup.dispatcher.bus = bus_;
    sup.dispatcher.stats = stats_;
    for (const auto& name : tasks_->names()) {
      sup.dispatcher.defaults.emplace(name, tasks_->find(name)->defaults);
    }
    stats_->declare_tasks(metrics_role::embedded, *tasks_);
    sup.dispatcher.on_finished = [board = board_](const workflow_outcome& o) { board->complete(o); };
    sup.dispatcher.on_store_failure = [board = board_](const error& why) { board->halt(why); };
    sup.dispatcher.limits = cfg_.limits;
    sup.dispatcher.max_batch = cfg_.max_batch;
    sup.dispatcher.max_cached_nodes = cfg_.max_cached_nodes;
    sup.dispatcher.jitter_seed = cfg_.jitter_seed;
    sup.dispatcher.result_expires = cfg_.result_expires;
    sup.dispatcher.idempotency_key_expires = cfg_.idempotency_key_expires;
    sup.dispatcher.dead_letter_expires = cfg_.dead_letter_expires;
    if (!tasks_->empty()) {
      worker_pool_config workers;
      workers.bus = bus_;
      workers.stats = stats_;
      workers.tasks = tasks_;
      workers.queues = cfg_.queues;
      workers.concurrency =
          cfg_.concurrency != 0 ? cfg_.concurrency : std::max(1u, std::thread::hardware_concurrency());
      workers.fetch_batch = cfg_.fetch_batch;
      workers.max_abandoned_handlers = cfg_.max_abandoned_handlers;
      workers.limits = cfg_.limits;
      // What the handler threads run, so that a revoke skips queued tasks
      // and, with terminate, stops running ones.
      workers.activity = std::make_shared<worker_activity>(workers.concurrency);
      activity_ = workers.activity;
      sup.dispatcher.on_revoked = [activity = workers.activity](const control_request& notice) {
        activity->revoke(notice.workflow_id, notice.nodes, notice.terminate);
      };
      sup.workers = std::move(workers);
    }
    if (!cfg_.http.listen.empty()) {
      // Before any actor runs: the transport reads its sink without a lock.
      hub_ = std::make_shared<event_hub>();
      bus_->set_lifecycle_sink([hub = hub_](const std::vector<lifecycle_event>& events) { hub->publish(events); });
    }
    runtime_ = std::make_unique<actor_runtime>(std::move(sup));
    if (!cfg_.http.listen.empty()) {
      auto server = http_server::start(cfg_.http, operator_endpoints(), "embedded engine");
      if (!server) {
        shutdown();
        throw setup_error(server.error().code(), server.error().message());
      }
      http_ = std::move(*server);
    }
  }

  int http_port() const noexcept { return http_ ? http_->port() : 0; }

  /// What the HTTP endpoint serves: this engine, called from HTTP threads.
  operator_api operator_endpoints() {
    operator_api api;
    api.metrics = [this](metrics_format f) { return metrics_text(f); };
    api.readiness = [this] {
      auto halted = board_->halted();
      bool running = !halted && !stopped_;
      value::map store{{"ok", !halted},
                       {"detail", halted ? to_string(*halted) : "store " + cfg_.store_path + " is open"}};
      value::map engine{{"ok", !stopped_.load()}, {"detail", stopped_ ? "shutting down" : "running"}};
      return value(value::map{{"ready", running},
                              {"checks", value::map{{"store", std::move(store)}, {"engine", std::move(engine)}}}});
    };
    api.workflows = [this](const workflow_list_query& q) {
      return workflows(workflow_query{q.state, q.limit, q.cursor});
    };
    api.workflow = [this](const std::string& id) { return graph(id); };
    api.queues = [this]() -> expected<value> { return value(queue_rows(metrics_text(metrics_format::prometheus))); };
    api.workers = [this]() -> expected<value> {
      value::array rows;
      if (activity_) {
        rows.push_back(worker_inspect_answer("embedded", cfg_.queues, tasks_->names(), *activity_, "embedded"));
      }
      return value(std::move(rows));
    };
    api.dead_letters = [this]() -> expected<value> {
      auto rows = dead_letters();
      if (!rows) {
        return rows.error();
      }
      for (auto& r : *rows) {
        if (r.is_map()) {
          r.as_map()["partition"] = 0;
        }
      }
      return value(std::move(*rows));
    };
    api.submit = [this](const value& workflow, const std::optional<std::string>& key) -> expected<value> {
      auto flow = canvas_from_value(workflow, cfg_.limits);
      if (!flow) {
        return flow.error();
      }
      if (auto known = check_tasks_known(workflow, *tasks_); !known) {
        return error{errc::unknown_task, known.error().message()};
      }
      auto h = submit(*flow, key);
      if (!h) {
        return h.error();
      }
      return value(value::map{{"id", h->id()}});
    };
    api.revoke = [this](const revoke_query& q) {
      return revoke(q.workflow_id, revoke_options{q.node, q.terminate});
    };
    api.replay = [this](std::int64_t letter, int partition) -> expected<value> {
      if (partition != 0) {
        return error{errc::not_found, "an embedded engine has one partition, 0"};
      }
      auto h = replay(letter);
      if (!h) {
        return h.error();
      }
      return value(value::map{{"id", h->id()}});
    };
    api.schedules = [this]() -> expected<value> {
      std::lock_guard<std::mutex> guard{schedules_mutex_};
      if (!schedules_source_) {
        return error{errc::not_found, "this engine runs no schedules (an in-memory store, or run_schedules off)"};
      }
      return schedules_source_();
    };
    api.events = hub_;
    return api;
  }

  /// Where `GET /api/schedules` reads: set by `engine` once its scheduler
  /// runs, cleared before it goes. A call in flight finishes first.
  void serve_schedules(std::function<expected<value>()> source) {
    std::lock_guard<std::mutex> guard{schedules_mutex_};
    schedules_source_ = std::move(source);
  }

  ~engine_core() { shutdown(); }

  /// The current dispatcher. Cached, because asking the supervisor on every
  /// call costs a scheduler wake-up per request (a third of a round trip);
  /// `refresh` asks again after the supervisor has replaced a dead one.
  dispatcher_actor dispatcher(bool refresh = false) {
    std::lock_guard<std::mutex> guard{dispatcher_mutex_};
    if (!dispatcher_ || refresh) {
      // An error leaves the handle invalid, and the request to it then
      // fails with one that `ask` reports.
      blocking_caller self{runtime_->system()};
      (*self)
          ->request(runtime_->supervisor(), max_actor_answer_wait, start_atom::value)
          .receive([&](dispatcher_actor& x) { dispatcher_ = std::move(x); },
                   [&](caf::error&) { dispatcher_ = nullptr; });
    }
    return dispatcher_;
  }

  template <class T, class... Ts>
  expected<T> ask(const Ts&... xs) {
    if (auto why = board_->halted()) {
      return *why;
    }
    if (stopped_) {
      return error{errc::shutting_down, "the engine is shut down"};
    }
    std::optional<expected<T>> out;
    for (int tries = 0; tries < 2; ++tries) {
      auto d = dispatcher(tries > 0);
      blocking_caller self{runtime_->system()};
      bool actor_gone = false;
      (*self)
          ->request(d, max_actor_answer_wait, xs...)
          .receive([&](T& x) { out.emplace(std::move(x)); },
                   [&](caf::error& e) {
                     // A dead dispatcher (restarted by the supervisor) is
                     // retried once on the new one; Trellis errors are answers.
                     bool timed_out = e == caf::sec::request_timeout;
                     actor_gone = e.category() != trellis_error_category && !timed_out;
                     out.emplace(timed_out ? no_answer_in_time() : from_caf_error(e, runtime_->system().render(e)));
                   });
      if (!actor_gone) {
        break;
      }
      if (auto why = board_->halted()) {
        return *why;  // told before the dispatcher stopped, so never missed here
      }
    }
    return std::move(*out);
  }

  /// A handle whose slot is registered before asking for the current status,
  /// so a workflow finishing in between is seen either way.
  expected<workflow_handle> handle_for(const std::string& id) {
    auto slot = board_->watch(id);
    auto status = ask<std::string>(status_atom::value, id);
    if (!status) {
      if (board_->halted()) {
        // The workflow is known (committed, or restored) but the store
        // failed since: the handle says so when waited on, naming the id
        // a later resume finishes.
        return workflow_handle{id, std::move(slot)};
      }
      return status.error();
    }
    auto v = unpack_from_string(*status, std::numeric_limits<std::size_t>::max(), defaults::max_stored_value_depth);
    if (v && v->is_map()) {
      const auto& m = v->as_map();
      auto state = node_state_from_string(m.at("state").as_string());
      if (state && is_terminal(*state)) {
        slot->fill(workflow_outcome{id, *state, m.count("result") ? m.at("result") : value{},
                                    m.count("error") ? m.at("error") : value{}});
      }
    }
    return workflow_handle{id, std::move(slot)};
  }

  expected<workflow_handle> submit(const canvas& flow, std::optional<std::string> key) {
    auto e = submission_envelope(new_workflow_id(), flow, key);
    if (auto known = check_tasks_known(e.payload, *tasks_); !known) {
      return known.error();
    }
    auto bytes = encode_submission(e, cfg_.limits.max_submission_bytes);
    if (!bytes) {
      return bytes.error();
    }
    auto id = ask<std::string>(submit_atom::value, std::move(*bytes));
    if (!id) {
      return id.error();
    }
    return handle_for(*id);
  }

  std::vector<workflow_handle> restored() {
    std::vector<workflow_handle> out;
    auto ids = ask<std::vector<std::string>>(restored_atom::value);
    if (!ids) {
      if (board_->halted()) {
        // The restore itself met the failed store: say so rather than
        // report that nothing was unfinished.
        throw setup_error(ids.error().code(), ids.error().message());
      }
      return out;
    }
    for (const auto& id : *ids) {
      if (auto h = handle_for(id)) {
        out.push_back(std::move(*h));
      }
    }
    return out;
  }

  expected<workflow_handle> replay(std::int64_t id) {
    auto wf = ask<std::string>(replay_atom::value, id);
    if (!wf) {
      return wf.error();
    }
    return handle_for(*wf);
  }

  /// `dlq list` as the cluster asks it (a control request), on the in-process transport.
  expected<value::array> dead_letters() {
    control_request request;
    request.op = control_op::dlq_list;
    auto body = ask_control(request);
    if (!body) {
      return body.error();
    }
    if (!body->is_map() || body->as_map().count("letters") == 0 || !body->as_map().at("letters").is_array()) {
      return error{errc::malformed_envelope, "the dispatcher's dead-letter answer holds no list of letters"};
    }
    return std::move(body->as_map().at("letters")).as_array();
  }

  /// A control request answered by the dispatcher, as the cluster asks it,
  /// on the in-process transport.
  expected<value> ask_control(const control_request& request) {
    if (auto why = board_->halted()) {
      return *why;
    }
    if (stopped_) {
      return error{errc::shutting_down, "the engine is shut down"};
    }
    auto reply = bus_->ask_control(encode(request), max_actor_answer_wait);
    if (!reply) {
      return reply.error();
    }
    return decode_control_reply(*reply);
  }

  expected<value> status(const std::string& workflow_id) {
    control_request request;
    request.op = control_op::status;
    request.workflow_id = workflow_id;
    return ask_control(request);
  }

  expected<value> graph(const std::string& workflow_id) {
    control_request request;
    request.op = control_op::graph;
    request.workflow_id = workflow_id;
    return ask_control(request);
  }

  expected<value> workflows(const workflow_query& query) {
    auto request = list_request(query);
    if (!request) {
      return request.error();
    }
    return ask_control(*request);
  }

  expected<value> revoke(const std::string& workflow_id, const revoke_options& options) {
    control_request request;
    request.op = control_op::revoke;
    request.workflow_id = workflow_id;
    request.node = options.node;
    request.terminate = options.terminate;
    return ask_control(request);
  }

  std::string metrics_text(metrics_format format) const {
    auto text = stats_->prometheus_text();
    text += "# HELP trellis_queue_depth Task messages of the queue waiting or delivered and not acked.\n";
    text += "# TYPE trellis_queue_depth gauge\n";
    for (const auto& [queue, depth] : bus_->depths()) {
      text += "trellis_queue_depth{queue=\"" + queue + "\"} " + std::to_string(depth) + "\n";
    }
    return in_format(std::move(text), format);
  }

  void shutdown() {
    // A second caller (a signal watcher racing the destructor) waits here
    // until the first has finished draining.
    std::lock_guard<std::mutex> guard{shutdown_mutex_};
    if (stopped_.exchange(true)) {
      return;
    }
    // No HTTP request reaches a stopping engine; event streams end.
    if (http_) {
      http_->stop();
    }
    if (hub_) {
      hub_->close();
    }
    // Closing first wakes idle worker threads at once instead of after their
    // fetch wait; handlers in progress still finish and report, and task
    // messages the dispatcher can no longer publish stay ready in the store.
    bus_->close();
    runtime_->stop([this] {
      std::lock_guard<std::mutex> cache_guard{dispatcher_mutex_};
      dispatcher_ = nullptr;
    });
  }

 private:
  engine_config cfg_;
  std::optional<store_lock> lock_;  // held while the engine lives; released last
  std::shared_ptr<const task_registry> tasks_;
  std::shared_ptr<inproc_transport> bus_ = std::make_shared<inproc_transport>();
  std::shared_ptr<metrics> stats_ = std::make_shared<metrics>();
  std::shared_ptr<completion_board> board_ = std::make_shared<completion_board>();
  std::unique_ptr<actor_runtime> runtime_;
  std::shared_ptr<worker_activity> activity_;
  std::shared_ptr<event_hub> hub_;
  std::unique_ptr<http_server> http_;
  std::mutex schedules_mutex_;
  std::function<expected<value>()> schedules_source_;
  std::mutex dispatcher_mutex_;
  dispatcher_actor dispatcher_;
  std::mutex shutdown_mutex_;
  std::atomic<bool> stopped_{false};
};

/// The engine's scheduler, submitting through the core like `engine::submit`.
std::unique_ptr<embedded_scheduler> start_scheduler(const std::string& path, engine_core& core,
                                                    const canvas_limits& limits, std::function<std::int64_t()> time) {
  auto submit = [&core, limits](const value& stored, const std::string& key) -> expected<std::string> {
    auto flow = canvas_from_value(stored, limits);
    if (!flow) {
      return flow.error();
    }
    auto handle = core.submit(*flow, key);
    if (!handle) {
      return handle.error();
    }
    return handle->id();
  };
  return std::make_unique<embedded_scheduler>(path, std::move(submit), std::move(time));
}

}  // namespace detail

expected<void> validate(const engine_config& cfg) {
  if (cfg.store_path.empty()) {
    return error{errc::invalid_config, "store_path: must name a file or \":memory:\""};
  }
  if (cfg.synchronous != "FULL" && cfg.synchronous != "NORMAL") {
    return error{errc::invalid_config, "synchronous: must be \"FULL\" or \"NORMAL\", got \"" + cfg.synchronous + "\""};
  }
  if (cfg.max_batch == 0) {
    return error{errc::invalid_config, "max_batch: must be at least 1"};
  }
  for (auto [name, expires] : {std::pair{"result_expires", cfg.result_expires},
                                std::pair{"idempotency_key_expires", cfg.idempotency_key_expires},
                                std::pair{"dead_letter_expires", cfg.dead_letter_expires}}) {
    if (expires.count() < 0 || expires > defaults::max_expires) {
      return error{errc::invalid_config, std::string{name} + ": must be from 0 (keep forever) to " +
                                             std::to_string(defaults::max_expires.count()) + " ms, got " +
                                             std::to_string(expires.count())};
    }
  }
  if (cfg.fetch_batch == 0) {
    return error{errc::invalid_config, "fetch_batch: must be at least 1"};
  }
  if (cfg.max_abandoned_handlers == 0 || cfg.max_abandoned_handlers > defaults::max_concurrency) {
    return error{errc::invalid_config, "max_abandoned_handlers: must be from 1 to " +
                                           std::to_string(defaults::max_concurrency) + ", got " +
                                           std::to_string(cfg.max_abandoned_handlers)};
  }
  if (auto ok = check_size_limits(cfg.limits); !ok) {
    return error{errc::invalid_config, "limits." + ok.error().message()};
  }
  if (!cfg.http.listen.empty()) {
    if (auto address = detail::check_http_options(cfg.http); !address) {
      return error{errc::invalid_config, "http: " + address.error().message()};
    }
  }
  return {};
}

expected<value> workflow_handle::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock{slot_->mutex};
  if (!slot_->done_cv.wait_for(lock, timeout, [&] { return slot_->done || slot_->halted; })) {
    return error{errc::timeout, "workflow " + id_ + " did not finish within " + std::to_string(timeout.count()) +
                                    " ms; it carries on"};
  }
  if (!slot_->done) {
    return *slot_->halted;
  }
  auto o = slot_->outcome;
  o.id = id_;
  return detail::outcome_result(o);
}

node_state workflow_handle::state() const {
  std::lock_guard<std::mutex> guard{slot_->mutex};
  return slot_->done ? slot_->outcome.state : node_state::started;
}

value workflow_handle::error_details() const {
  std::lock_guard<std::mutex> guard{slot_->mutex};
  return slot_->done ? slot_->outcome.error : value{};
}

engine::engine(engine_config cfg, task_registry tasks) {
  const bool schedules = cfg.run_schedules && cfg.store_path != ":memory:";
  const std::string path = cfg.store_path;
  auto time = cfg.scheduler_now ? cfg.scheduler_now : std::function<std::int64_t()>{&detail::now_epoch_ms};
  const canvas_limits limits = cfg.limits;
  core_ = std::make_unique<detail::engine_core>(std::move(cfg), std::move(tasks));
  if (schedules) {
    scheduler_ = detail::start_scheduler(path, *core_, limits, std::move(time));
    core_->serve_schedules([this]() -> expected<value> {
      auto rows = this->schedules();
      if (!rows) {
        return rows.error();
      }
      return value(std::move(*rows));
    });
  }
}

engine::~engine() {
  // The HTTP endpoint (owned by the core) must not reach the scheduler
  // once it goes.
  if (core_) {
    core_->serve_schedules({});
  }
}

expected<workflow_handle> engine::submit(const canvas& flow, std::optional<std::string> key) {
  return core_->submit(flow, std::move(key));
}

std::vector<workflow_handle> engine::restored() { return core_->restored(); }

expected<workflow_handle> engine::find(const std::string& workflow_id) { return core_->handle_for(workflow_id); }

expected<value::array> engine::dead_letters() { return core_->dead_letters(); }

expected<workflow_handle> engine::replay_dead_letter(std::int64_t id) { return core_->replay(id); }

expected<value> engine::status(const std::string& workflow_id) { return core_->status(workflow_id); }

expected<std::int64_t> engine::prune(std::chrono::milliseconds older_than) {
  return core_->ask<std::int64_t>(detail::expire_atom::value, static_cast<std::int64_t>(older_than.count()));
}

expected<void> engine::forget(const std::string& workflow_id) {
  auto forgotten = core_->ask<std::string>(detail::forget_atom::value, workflow_id);
  if (!forgotten) {
    return forgotten.error();
  }
  return {};
}

expected<value> engine::workflows(const workflow_query& query) { return core_->workflows(query); }

int engine::http_port() const noexcept { return core_->http_port(); }

expected<value> engine::graph(const std::string& workflow_id) { return core_->graph(workflow_id); }

expected<value> engine::revoke(const std::string& workflow_id, revoke_options options) {
  return core_->revoke(workflow_id, options);
}

std::string engine::metrics_text(metrics_format format) const { return core_->metrics_text(format); }

void engine::shutdown() {
  // The scheduler first: no tick is submitted to a draining engine.
  if (scheduler_) {
    scheduler_->stop();
  }
  core_->shutdown();
}

}  // namespace trellis
