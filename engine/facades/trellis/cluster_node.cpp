#include "trellis/cluster_node.hpp"

#include "trellis/actors/actor_runtime.hpp"
#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/process_pool.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/actors/worker_activity.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/clock.hpp"
#include "trellis/cluster_http.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/log.hpp"
#include "trellis/metrics.hpp"
#include "trellis/operator_views.hpp"
#include "trellis/prometheus_merge.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_lock.hpp"
#include "trellis/transport/broker_exposure.hpp"
#include "trellis/transport/cluster_bus.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace trellis::detail {

nats_config nats_config_for(const cluster_options& opts, const std::string& client_name) {
  nats_config cfg;
  cfg.urls = opts.broker_urls;
  cfg.ns = opts.ns;
  cfg.client_name = client_name;
  cfg.ack_wait = opts.ack_wait;
  cfg.max_deliver = opts.max_deliver;
  cfg.task_pack_max = opts.task_pack;
  cfg.security = opts.security;
  cfg.replicas = opts.replicas;
  return cfg;
}

namespace {

/// `nats_config_for` for a worker or dispatcher: at start it waits up to
/// `opts.broker_wait` for a broker that does not answer yet, and says so
/// once on stderr.
nats_config server_config_for(const cluster_options& opts, const std::string& client_name) {
  auto cfg = nats_config_for(opts, client_name);
  cfg.connect_wait = opts.broker_wait;
  cfg.task_events = opts.task_events;
  // Only the redacted form is ever logged: no password, token or URL user.
  log::debug() << client_name << ": connecting: " << cfg.redacted();
  cfg.on_connect_wait = [client_name](const std::string& why, std::chrono::milliseconds wait) {
    log::warn() << client_name << ": " << why << "; trying again for up to " << wait.count() / 1000
                << " s (--broker-wait-ms)";
  };
  return cfg;
}

expected<void> validate_partitions(const cluster_options& opts) {
  if (opts.partitions < 1 || opts.partitions > defaults::max_partitions) {
    return error{errc::invalid_config, "partitions: " + std::to_string(opts.partitions) + " is not in [1, " +
                                           std::to_string(defaults::max_partitions) + "]"};
  }
  std::set<int> seen;
  for (int p : opts.owns) {
    if (p < 0 || p >= opts.partitions) {
      return error{errc::invalid_config, "owns: partition " + std::to_string(p) + " is not in [0, " +
                                             std::to_string(opts.partitions) + ") (--partitions " +
                                             std::to_string(opts.partitions) + ")"};
    }
    if (!seen.insert(p).second) {
      return error{errc::invalid_config, "owns: partition " + std::to_string(p) + " is named twice"};
    }
  }
  if (opts.max_deliver < 1) {
    return error{errc::invalid_config, "max_deliver: must be at least 1"};
  }
  return {};
}

/// Refuses an unprotected broker off loopback (broker_exposure.hpp).
expected<void> validate_exposure(const cluster_options& opts) {
  broker_protection protection;
  const auto& security = opts.security;
  protection.authenticated = !security.user.empty() || !security.token.empty() || !security.creds_file.empty() ||
                             !security.tls_cert_file.empty();
  protection.signed_messages = security.signer != nullptr;
  protection.insecure = opts.insecure;
  return check_broker_exposure(opts.broker_urls, protection);
}

/// Subscribes the process behind `bus` to requests of `op` on their
/// broadcast subject and answers each with `answer(bus)`; a request that does
/// not decode, or names another op, gets an error reply. Answered on the NATS
/// thread. The callback holds the bus weakly: the bus owns the callback and
/// must not keep itself alive.
expected<void> serve_request(const std::shared_ptr<cluster_bus>& bus, control_op op,
                             std::function<value(cluster_bus&)> answer) {
  std::weak_ptr<cluster_bus> weak = bus;
  return bus->serve_control(subject_verb(op), [weak, op, answer = std::move(answer)](delivery d) {
    auto bus_now = weak.lock();
    if (!bus_now || d.token == 0) {
      return;
    }
    auto request = decode_control_request(d.bytes);
    if (!request) {
      bus_now->answer_control(d, encode_control_error(request.error()));
      return;
    }
    if (request->op != op) {
      bus_now->answer_control(
          d, encode_control_error(error{errc::malformed_envelope, std::string{"control op '"} + to_string(request->op) +
                                                                      "' sent on the " + to_string(op) + " subject"}));
      return;
    }
    bus_now->answer_control(d, encode_control_reply(answer(*bus_now)));
  });
}

/// Subscribes a worker to `inspect` (answered from `activity`) and to
/// `revoked` notices (remembered in `activity`).
expected<void> serve_worker_control(const std::shared_ptr<cluster_bus>& bus, std::shared_ptr<worker_activity> activity,
                                    std::vector<std::string> queues, std::vector<std::string> tasks) {
  auto name = bus->process_name();
  auto inspect = serve_request(bus, control_op::inspect, [activity, queues, tasks, name](cluster_bus&) {
    return worker_inspect_answer(name, queues, tasks, *activity);
  });
  if (!inspect) {
    return inspect;
  }
  // From the revoked stream: the notices kept from before this worker
  // started, then each new one.
  return bus->watch_revocations([activity](std::string bytes) {
    auto notice = decode_control_request(bytes);
    if (!notice || notice->op != control_op::revoked) {
      // A notice has nobody to answer; a bad one is dropped, and the
      // dispatcher still ignores the revoked workflow's outcomes.
      log::warn() << "ignoring a malformed revoke notice: "
                  << (notice ? std::string{"op "} + to_string(notice->op) : to_string(notice.error()));
      return;
    }
    activity->revoke(notice->workflow_id, notice->nodes, notice->terminate);
  });
}

/// The Prometheus text a process answers `metrics` with: everything in
/// `stats`, plus for a dispatcher (`report_depths`) the depth of every queue
/// it published to, as the `trellis_queue_depth` gauge of embedded mode. A
/// depth the broker cannot tell is left out, and the reason logged.
std::string metrics_text_of(cluster_bus& bus, const metrics& stats, bool report_depths) {
  auto text = stats.prometheus_text();
  if (!report_depths) {
    return text;
  }
  std::string depths;
  for (const auto& queue : stats.queues()) {
    auto depth = bus.queue_depth(queue);
    if (!depth) {
      log::warn() << "metrics leave out the depth of queue " << queue << ": " << to_string(depth.error());
      continue;
    }
    depths += "trellis_queue_depth{queue=\"" + queue + "\"} " + std::to_string(*depth) + "\n";
  }
  if (!depths.empty()) {
    text += "# HELP trellis_queue_depth Task messages of the queue waiting or delivered and not acked.\n"
            "# TYPE trellis_queue_depth gauge\n" +
            depths;
  }
  return text;
}

/// Subscribes the process behind `bus` to `metrics` requests, answered with
/// {role, name, text}. Answered here on the NATS thread, not through the
/// dispatcher actor: the metrics are thread-safe, and a queue depth is a
/// broker round trip that must not hold up the dispatcher's mailbox.
expected<void> serve_metrics(const std::shared_ptr<cluster_bus>& bus, std::shared_ptr<const metrics> stats,
                             const std::string& role) {
  auto name = bus->process_name();
  bool dispatcher = role == "dispatcher";
  return serve_request(bus, control_op::metrics, [stats, role, name, dispatcher](cluster_bus& bus_now) {
    value::map answer{{"role", role}, {"name", name}, {"text", metrics_text_of(bus_now, *stats, dispatcher)}};
    return value(std::move(answer));
  });
}

}  // namespace

// Outside the anonymous namespace: cluster_node_core (declared in the header)
// holds these.

/// The actor runtime of a worker pool or of one partition's dispatcher,
/// with the NATS transport that feeds it.
class node_runtime {
 public:
  node_runtime(std::shared_ptr<nats_transport> bus, supervisor_config sup)
      : bus_(std::move(bus)), actors_(std::move(sup)) {}

  ~node_runtime() { shutdown(); }
  node_runtime(const node_runtime&) = delete;
  node_runtime& operator=(const node_runtime&) = delete;

  /// What this runtime's `metrics` answer is made of (its HTTP `/metrics`).
  std::shared_ptr<const metrics> stats;
  std::shared_ptr<cluster_bus> cluster;

  void shutdown() {
    // Closing first wakes idle fetches and stops the event thread; handlers
    // in progress still report, and acks still go out.
    bus_->close();
    actors_.stop();
  }

 private:
  std::shared_ptr<nats_transport> bus_;
  actor_runtime actors_;
};

/// The dispatcher of one partition: its store lock, held for as long as the
/// dispatcher runs, and the dispatcher itself.
struct partition_runtime {
  int partition = 0;
  std::optional<store_lock> lock;
  std::unique_ptr<node_runtime> runtime;
};

using task_defaults_by_name = std::map<std::string, task_defaults, std::less<>>;

/// Opens partition `partition`'s store, connects and starts its dispatcher.
/// The caller holds the store's lock.
static expected<std::unique_ptr<node_runtime>> start_partition(const cluster_options& opts, int partition,
                                                               const task_defaults_by_name& defaults,
                                                               std::function<void(const error&)> on_store_failure) {
  std::shared_ptr<sqlite_store> store;
  try {
    store = sqlite_store::open(partition_store_path(opts.db, partition, opts.partitions), store_options{});
  } catch (const setup_error& e) {
    return error{e.code(), e.what()};
  }
  auto cfg = server_config_for(opts, "trellis-dispatcher-p" + std::to_string(partition));
  cfg.partition = partition;
  cfg.consume_events = true;
  auto nats = connect_nats(std::move(cfg));
  if (!nats) {
    return nats.error();
  }
  std::shared_ptr<nats_transport> shared = nats->transport;
  std::shared_ptr<cluster_bus> cluster = nats->bus;
  supervisor_config sup;
  sup.dispatcher.store = std::move(store);
  sup.dispatcher.bus = shared;
  auto stats = std::make_shared<metrics>();
  if (auto ok = serve_metrics(cluster, stats, "dispatcher"); !ok) {
    return ok.error();
  }
  sup.dispatcher.stats = stats;
  for (const auto& [name, d] : defaults) {
    stats->declare_task(metrics_role::dispatcher, d.queue, name);
  }
  sup.dispatcher.defaults = defaults;
  sup.dispatcher.partition = partition;
  sup.dispatcher.partitions = opts.partitions;
  sup.dispatcher.max_cached_nodes = opts.max_cached_nodes;
  sup.dispatcher.result_expires = opts.result_expires;
  sup.dispatcher.idempotency_key_expires = opts.idempotency_key_expires;
  sup.dispatcher.dead_letter_expires = opts.dead_letter_expires;
  sup.dispatcher.limits = opts.limits;
  sup.dispatcher.on_store_failure = std::move(on_store_failure);
  std::weak_ptr<cluster_bus> weak = cluster;
  sup.dispatcher.inspect_identity = value::map{{"name", cluster->process_name()}, {"partition", partition}};
  // After the commit that revoked the workflow: workers skip its queued
  // tasks, including workers that start later (the revoked stream keeps the
  // notice). A notice the broker refuses is logged; a worker that never
  // hears of it runs the tasks, and the dispatcher ignores their outcomes.
  sup.dispatcher.on_revoked = [weak](const control_request& notice) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    if (auto ok = bus_now->publish_revocation(notice.workflow_id, encode(notice)); !ok) {
      log::warn() << "cannot tell the workers that workflow " << notice.workflow_id
                  << (notice.nodes.empty() ? std::string{} : " (or some of its tasks)")
                  << " is revoked: " << to_string(ok.error());
    }
  };
  // Called after the commit that finished the workflow, on the dispatcher's
  // thread. Core NATS: a client that is not listening right now asks the
  // store (`status`) instead.
  sup.dispatcher.on_finished = [weak](const workflow_outcome& o) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    value::map note{{"id", o.id}, {"state", std::string{to_string(o.state)}}, {"result", o.result}, {"error", o.error}};
    auto bytes = pack_to_string(value(note));
    if (bytes.size() > bus_now->max_notice_bytes()) {
      // Too large for one message: announced without the result, which a
      // waiting client asks for (its status answer travels in pieces).
      note.erase("result");
      note["result_too_large"] = true;
      bytes = pack_to_string(value(std::move(note)));
    }
    if (auto ok = bus_now->publish_done(o.id, bytes); !ok) {
      log::warn() << "cannot announce workflow " << o.id << ": " << to_string(ok.error());
    }
  };
  // "Worker lost": every partition's dispatcher reads every advisory of the
  // namespace from the lost stream (its own consumer, so it catches up on
  // what fired while it was down), keeps the tasks of its own workflows and
  // passes the others. The handle is the advisory's token.
  sup.dispatcher.watch_lost_tasks = [weak](std::function<void(std::string, std::int32_t, std::uint64_t)> sink) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    auto ok = bus_now->watch_exhausted_tasks(
        [sink = std::move(sink)](exhausted_task t) { sink(std::move(t.bytes), t.deliveries, t.token); });
    if (!ok) {
      log::warn() << "cannot watch for lost workers yet (the transport keeps trying): " << to_string(ok.error());
    }
  };
  sup.dispatcher.discard_lost_task = [weak](std::uint64_t token) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    if (auto ok = bus_now->settle_exhausted_task(token); !ok) {
      // Its advisory stays unacked and comes again after AckWait; the dead
      // letter is committed, so the second time only removes the task.
      log::warn() << "cannot discard lost task (retried after AckWait): " << to_string(ok.error());
    }
  };
  sup.dispatcher.pass_lost_task = [weak](std::uint64_t token) {
    if (auto bus_now = weak.lock()) {
      bus_now->pass_exhausted_task(token);
    }
  };
  auto runtime = std::make_unique<node_runtime>(shared, std::move(sup));
  runtime->stats = stats;
  runtime->cluster = cluster;
  return runtime;
}

/// Everything one cluster process runs: a worker pool, or the dispatchers of
/// the partitions it owns (those it serves and those it stands by for).
class cluster_node_core {
 public:
  cluster_node_core() = default;
  ~cluster_node_core() { shutdown(); }
  cluster_node_core(const cluster_node_core&) = delete;
  cluster_node_core& operator=(const cluster_node_core&) = delete;

  cluster_options opts;
  task_defaults_by_name defaults;
  std::unique_ptr<node_runtime> worker;
  /// The worker's handler children (`--pool process`); null otherwise.
  std::shared_ptr<process_pool> processes;
  std::vector<partition_runtime> partitions;

  expected<std::size_t> take_over() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (auto why = failure()) {
      return *why;
    }
    if (processes && processes->failed()) {
      return error{errc::process_pool_failed,
                   processes->failure() +
                       "; the worker stops: the tasks it holds unacked are delivered again to other workers"};
    }
    std::size_t waiting = 0;
    for (auto& p : partitions) {
      if (p.runtime || stopped_) {
        continue;
      }
      auto lock = store_lock::try_acquire(partition_store_path(opts.db, p.partition, opts.partitions),
                                          "dispatcher of partition " + std::to_string(p.partition));
      if (!lock) {
        if (lock.error().code() == errc::store_locked && opts.standby) {
          ++waiting;
          continue;
        }
        if (lock.error().code() == errc::store_locked) {
          return error{errc::store_locked, lock.error().message() +
                                               "; stop that one first, or start this one with --standby to take "
                                               "over when it stops"};
        }
        return lock.error();
      }
      auto runtime = start_partition(opts, p.partition, defaults, [failed = failed_](const error& why) {
        std::lock_guard<std::mutex> note_guard{failed->mutex};
        failed->why = why;
      });
      if (!runtime) {
        return runtime.error();
      }
      p.lock = std::move(*lock);
      p.runtime = std::move(*runtime);
      log::info() << "dispatcher serves partition " << p.partition << " of " << opts.partitions << " (store "
                  << partition_store_path(opts.db, p.partition, opts.partitions) << ")";
    }
    return waiting;
  }

  /// With `opts.http.listen`: the namespace's HTTP API, with this
  /// process's own metrics and readiness (docs/operations.md "HTTP").
  expected<void> start_http(const char* role) {
    if (opts.http.listen.empty()) {
      return {};
    }
    auto server = start_cluster_http(
        opts, role, [this](metrics_format f) { return own_metrics(f); }, [this] { return readiness(); });
    if (!server) {
      return server.error();
    }
    http_ = std::move(*server);
    return {};
  }

  /// This process's metrics: each runtime's `metrics` answer, merged with a
  /// `partition` label when a dispatcher process serves several.
  std::string own_metrics(metrics_format format) {
    std::vector<std::pair<std::string, const node_runtime*>> sources;
    std::unique_lock<std::mutex> guard{mutex_, std::try_to_lock};
    if (!guard.owns_lock()) {  // a standby taking over: answer without it
      return in_format("", format);
    }
    if (worker) {
      sources.emplace_back("", worker.get());
    }
    for (const auto& p : partitions) {
      if (p.runtime) {
        sources.emplace_back(std::to_string(p.partition), p.runtime.get());
      }
    }
    if (sources.size() == 1) {
      const auto* r = sources.front().second;
      return in_format(metrics_text_of(*r->cluster, *r->stats, !worker), format);
    }
    prometheus_merge merged;
    for (const auto& [label, r] : sources) {
      if (auto ok = merged.add(metrics_text_of(*r->cluster, *r->stats, true), "partition", label); !ok) {
        log::warn() << "metrics of partition " << label << " left out: " << ok.error().message();
      }
    }
    return in_format(merged.text(), format);
  }

  /// {ready, checks}: the broker connection of each runtime, each owned
  /// partition served, no store failure, the process pool alive.
  value readiness() {
    value::map checks;
    bool ready = true;
    auto check = [&](const std::string& name, bool ok, const std::string& detail) {
      checks[name] = value::map{{"ok", ok}, {"detail", detail}};
      ready = ready && ok;
    };
    std::unique_lock<std::mutex> guard{mutex_, std::try_to_lock};
    if (!guard.owns_lock()) {
      check("process", false, "starting a dispatcher");
      return value(value::map{{"ready", false}, {"checks", std::move(checks)}});
    }
    check("process", !stopped_, stopped_ ? "shutting down" : "running");
    if (worker) {
      bool up = worker->cluster->is_connected();
      check("broker", up, up ? "connected" : "not connected");
      if (processes) {
        check("process_pool", !processes->failed(), processes->failed() ? processes->failure() : "running");
      }
    }
    if (auto why = failure()) {
      check("store", false, to_string(*why));
    }
    for (const auto& p : partitions) {
      auto name = "partition_" + std::to_string(p.partition);
      if (!p.runtime) {
        check(name, false, "waiting for the store lock (standby)");
        continue;
      }
      bool up = p.runtime->cluster->is_connected();
      check(name, up, up ? "owned, store open, broker connected" : "owned, broker not connected");
    }
    return value(value::map{{"ready", ready}, {"checks", std::move(checks)}});
  }

  void shutdown() {
    if (http_) {
      http_->stop();  // before the runtimes its answers read go
    }
    std::lock_guard<std::mutex> guard{mutex_};
    stopped_ = true;
    if (worker) {
      worker->shutdown();
    }
    // Each store's lock goes only after its dispatcher committed and
    // stopped, so a standby never opens a store that is still written.
    for (auto& p : partitions) {
      if (p.runtime) {
        p.runtime->shutdown();
      }
      p.lock.reset();
    }
  }

 private:
  /// The store failure that stopped one of this process's dispatchers.
  std::optional<error> failure() const {
    std::lock_guard<std::mutex> guard{failed_->mutex};
    return failed_->why;
  }

  struct store_failure_note {
    std::mutex mutex;
    std::optional<error> why;
  };

  std::mutex mutex_;
  bool stopped_ = false;
  std::unique_ptr<http_server> http_;
  // Shared with the dispatchers' callbacks, which may run on their threads
  // while this object is being torn down.
  std::shared_ptr<store_failure_note> failed_ = std::make_shared<store_failure_note>();
};

const char* to_string(pool_kind kind) noexcept { return kind == pool_kind::process ? "process" : "thread"; }

std::string partition_store_path(const std::string& db, int partition, int partitions) {
  if (partitions <= 1) {
    return db;
  }
  std::filesystem::path path{db};
  auto name = path.stem().string() + "-p" + std::to_string(partition) + path.extension().string();
  return (path.parent_path() / name).string();
}

cluster_node::cluster_node(std::unique_ptr<cluster_node_core> core) : core_(std::move(core)) {}

cluster_node::~cluster_node() = default;

void cluster_node::shutdown() { core_->shutdown(); }

expected<std::size_t> cluster_node::take_over() { return core_->take_over(); }

expected<std::unique_ptr<cluster_node>> cluster_node::start_worker(const cluster_options& opts, task_registry tasks) {
  if (tasks.empty()) {
    return error{errc::invalid_config, "a worker needs task handlers; this binary registers none"};
  }
  if (opts.fetch_batch == 0) {
    return error{errc::invalid_config, "fetch_batch: must be at least 1"};
  }
  if (opts.max_abandoned_handlers == 0 || opts.max_abandoned_handlers > defaults::max_concurrency) {
    return error{errc::invalid_config, "max_abandoned_handlers: must be from 1 to " +
                                           std::to_string(defaults::max_concurrency) + ", got " +
                                           std::to_string(opts.max_abandoned_handlers)};
  }
  if (auto ok = validate_partitions(opts); !ok) {
    return ok.error();
  }
  if (auto ok = validate_exposure(opts); !ok) {
    return ok.error();
  }
  auto concurrency = opts.concurrency != 0 ? opts.concurrency : std::max(1u, std::thread::hardware_concurrency());
  auto registry = std::make_shared<const task_registry>(std::move(tasks));
  auto stats = std::make_shared<metrics>();
  std::shared_ptr<process_pool> processes;
  if (opts.pool == pool_kind::process) {
    // Before the broker connection and the actor system: the zygote must be
    // forked while this process has one thread (zygote.hpp).
    auto started = process_pool::start(registry, concurrency, opts.limits, stats);
    if (!started) {
      return started.error();
    }
    processes = std::move(*started);
  }
  auto cfg = server_config_for(opts, "trellis-worker");
  cfg.task_queues = opts.queues;
  cfg.all_task_queues = opts.queues.empty();
  // Only the messages of registered tasks reach this worker; another
  // worker's tasks wait for it (decision 0022).
  cfg.task_names = registry->names();
  auto nats = connect_nats(std::move(cfg));
  if (!nats) {
    return nats.error();
  }
  std::shared_ptr<nats_transport> shared = nats->transport;
  std::shared_ptr<cluster_bus> cluster = nats->bus;
  supervisor_config sup;
  sup.run_dispatcher = false;
  worker_pool_config workers;
  workers.bus = shared;
  workers.stats = stats;
  if (auto ok = serve_metrics(cluster, workers.stats, "worker"); !ok) {
    return ok.error();
  }
  workers.tasks = registry;
  workers.stats->declare_tasks(metrics_role::worker, *workers.tasks, opts.queues);
  workers.queues = opts.queues;
  workers.concurrency = concurrency;
  workers.processes = processes;
  workers.fetch_batch = opts.fetch_batch;
  workers.max_abandoned_handlers = opts.max_abandoned_handlers;
  workers.limits = opts.limits;
  workers.partitions = opts.partitions;
  workers.activity = std::make_shared<worker_activity>(workers.concurrency);
  if (auto ok = serve_worker_control(cluster, workers.activity, opts.queues, workers.tasks->names()); !ok) {
    return ok.error();
  }
  sup.workers = std::move(workers);
  auto core = std::make_unique<cluster_node_core>();
  core->opts = opts;
  core->worker = std::make_unique<node_runtime>(shared, std::move(sup));
  core->worker->stats = stats;
  core->worker->cluster = cluster;
  core->processes = std::move(processes);
  if (auto ok = core->start_http("worker"); !ok) {
    return ok.error();
  }
  return std::unique_ptr<cluster_node>{new cluster_node{std::move(core)}};
}

expected<std::unique_ptr<cluster_node>> cluster_node::start_dispatcher(const cluster_options& opts,
                                                                       const task_registry& tasks) {
  if (auto ok = validate_partitions(opts); !ok) {
    return ok.error();
  }
  if (auto ok = validate_exposure(opts); !ok) {
    return ok.error();
  }
  auto core = std::make_unique<cluster_node_core>();
  core->opts = opts;
  for (const auto& name : tasks.names()) {
    core->defaults.emplace(name, tasks.find(name)->defaults);
  }
  auto owned = opts.owns;
  if (owned.empty()) {
    for (int p = 0; p < opts.partitions; ++p) {
      owned.push_back(p);
    }
  }
  for (int p : owned) {
    core->partitions.push_back(partition_runtime{p, std::nullopt, nullptr});
  }
  if (auto started = core->take_over(); !started) {
    return started.error();  // the core's destructor stops what started
  }
  if (auto ok = core->start_http("dispatcher"); !ok) {
    return ok.error();
  }
  return std::unique_ptr<cluster_node>{new cluster_node{std::move(core)}};
}

}  // namespace trellis::detail
