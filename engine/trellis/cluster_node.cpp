#include "trellis/cluster_node.hpp"

#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/metrics.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_lock.hpp"
#include "trellis/transport/nats_transport.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
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
  cfg.user = opts.user;
  cfg.password = opts.password;
  cfg.token = opts.token;
  cfg.creds_file = opts.creds_file;
  cfg.tls_ca_file = opts.tls_ca_file;
  cfg.tls_cert_file = opts.tls_cert_file;
  cfg.tls_key_file = opts.tls_key_file;
  cfg.signer = opts.signer;
  return cfg;
}

namespace {

/// More partitions than this is a typo rather than a plan: each one is a
/// store, a NATS connection and a dispatcher thread.
constexpr int max_partitions = 1024;

expected<void> validate_partitions(const cluster_options& opts) {
  if (opts.partitions < 1 || opts.partitions > max_partitions) {
    return error{errc::invalid_config, "partitions: " + std::to_string(opts.partitions) + " is not in [1, " +
                                           std::to_string(max_partitions) + "]"};
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

}  // namespace

// Outside the anonymous namespace: cluster_node_core (declared in the header)
// holds these.

/// One running actor system with its supervisor and NATS transport: a
/// worker pool, or the dispatcher of one partition.
class node_runtime {
 public:
  node_runtime(std::shared_ptr<nats_transport> bus, supervisor_config sup) : bus_(std::move(bus)) {
    caf_cfg_.set("scheduler.max-threads", 2);
    caf_cfg_.set("logger.verbosity", caf::atom("quiet"));
    system_ = std::make_unique<caf::actor_system>(caf_cfg_);
    supervisor_ = spawn_supervisor(*system_, std::move(sup));
    // CAF 0.17 pins its logger to every thread that spawns; see the logger
    // caveat in docs/architecture.md.
    caf::logger::set_current_actor_system(nullptr);
  }

  ~node_runtime() { shutdown(); }
  node_runtime(const node_runtime&) = delete;
  node_runtime& operator=(const node_runtime&) = delete;

  void shutdown() {
    std::lock_guard<std::mutex> guard{shutdown_mutex_};
    if (stopped_) {
      return;
    }
    stopped_ = true;
    // As the engine: closing first wakes idle fetches and stops the event
    // thread; handlers in progress still report, and acks still go out.
    bus_->close();
    {
      caf::scoped_actor self{*system_};
      self->request(supervisor_, caf::infinite, drain_atom::value).receive([](bool) {}, [](caf::error&) {});
      self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
    }
    caf::logger::set_current_actor_system(nullptr);
    system_.reset();  // waits for every actor, detached ones included
  }

 private:
  std::shared_ptr<nats_transport> bus_;
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  supervisor_actor supervisor_;
  std::mutex shutdown_mutex_;
  bool stopped_ = false;
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
                                                               const task_defaults_by_name& defaults) {
  std::shared_ptr<sqlite_store> store;
  try {
    store = sqlite_store::open(partition_store_path(opts.db, partition, opts.partitions), store_options{});
  } catch (const setup_error& e) {
    return error{e.code(), e.what()};
  }
  auto cfg = nats_config_for(opts, "trellis-dispatcher-p" + std::to_string(partition));
  cfg.partition = partition;
  cfg.consume_events = true;
  auto bus = nats_transport::connect(std::move(cfg));
  if (!bus) {
    return bus.error();
  }
  std::shared_ptr<nats_transport> shared = std::move(*bus);
  supervisor_config sup;
  sup.dispatcher.store = std::move(store);
  sup.dispatcher.bus = shared;
  sup.dispatcher.stats = std::make_shared<metrics>();
  sup.dispatcher.defaults = defaults;
  sup.dispatcher.partition = partition;
  sup.dispatcher.partitions = opts.partitions;
  std::weak_ptr<nats_transport> weak = shared;
  // Called after the commit that finished the workflow, on the dispatcher's
  // thread. Core NATS: a client that is not listening right now asks the
  // store (`status`) instead.
  sup.dispatcher.on_finished = [weak](const workflow_outcome& o) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    value::map note{{"id", o.id}, {"state", std::string{to_string(o.state)}}, {"result", o.result}, {"error", o.error}};
    if (auto ok = bus_now->publish_done(o.id, pack_to_string(value(std::move(note)))); !ok) {
      std::cerr << "trellis: cannot announce workflow " << o.id << ": " << to_string(ok.error()) << std::endl;
    }
  };
  // "Worker lost": every partition's dispatcher hears every advisory of the
  // namespace and keeps the tasks of its own workflows.
  sup.dispatcher.watch_lost_tasks = [weak](std::function<void(std::string, std::int32_t, std::uint64_t)> sink) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    auto ok = bus_now->watch_exhausted_tasks(
        [sink = std::move(sink)](exhausted_task t) { sink(std::move(t.bytes), t.deliveries, t.stream_sequence); });
    if (!ok) {
      std::cerr << "trellis: cannot watch for lost workers: " << to_string(ok.error()) << std::endl;
    }
  };
  sup.dispatcher.discard_lost_task = [weak](std::uint64_t sequence) {
    auto bus_now = weak.lock();
    if (!bus_now) {
      return;
    }
    if (auto ok = bus_now->discard_exhausted_task(sequence); !ok) {
      // It stays in the stream (and in queue_depth); the dead letter is
      // committed, so nothing is lost.
      std::cerr << "trellis: cannot discard lost task " << sequence << ": " << to_string(ok.error()) << std::endl;
    }
  };
  return std::make_unique<node_runtime>(shared, std::move(sup));
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
  std::vector<partition_runtime> partitions;

  expected<std::size_t> take_over() {
    std::lock_guard<std::mutex> guard{mutex_};
    std::size_t waiting = 0;
    for (auto& p : partitions) {
      if (p.runtime || stopped_) {
        continue;
      }
      auto lock = store_lock::try_acquire(partition_store_path(opts.db, p.partition, opts.partitions));
      if (!lock) {
        if (lock.error().code() == errc::store_locked && opts.standby) {
          ++waiting;
          continue;
        }
        return lock.error();
      }
      auto runtime = start_partition(opts, p.partition, defaults);
      if (!runtime) {
        return runtime.error();
      }
      p.lock = std::move(*lock);
      p.runtime = std::move(*runtime);
      std::cerr << "trellis: dispatcher serves partition " << p.partition << " of " << opts.partitions << " (store "
                << partition_store_path(opts.db, p.partition, opts.partitions) << ")" << std::endl;
    }
    return waiting;
  }

  void shutdown() {
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
  std::mutex mutex_;
  bool stopped_ = false;
};

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
  if (auto ok = validate_partitions(opts); !ok) {
    return ok.error();
  }
  auto cfg = nats_config_for(opts, "trellis-worker");
  cfg.task_queues = opts.queues;
  cfg.all_task_queues = opts.queues.empty();
  auto bus = nats_transport::connect(std::move(cfg));
  if (!bus) {
    return bus.error();
  }
  std::shared_ptr<nats_transport> shared = std::move(*bus);
  supervisor_config sup;
  sup.run_dispatcher = false;
  worker_pool_config workers;
  workers.bus = shared;
  workers.stats = std::make_shared<metrics>();
  workers.tasks = std::make_shared<const task_registry>(std::move(tasks));
  workers.queues = opts.queues;
  workers.concurrency =
      opts.concurrency != 0 ? opts.concurrency : std::max(1u, std::thread::hardware_concurrency());
  workers.fetch_batch = opts.fetch_batch;
  workers.partitions = opts.partitions;
  sup.workers = std::move(workers);
  auto core = std::make_unique<cluster_node_core>();
  core->opts = opts;
  core->worker = std::make_unique<node_runtime>(shared, std::move(sup));
  return std::unique_ptr<cluster_node>{new cluster_node{std::move(core)}};
}

expected<std::unique_ptr<cluster_node>> cluster_node::start_dispatcher(const cluster_options& opts,
                                                                       const task_registry& tasks) {
  if (auto ok = validate_partitions(opts); !ok) {
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
  return std::unique_ptr<cluster_node>{new cluster_node{std::move(core)}};
}

}  // namespace trellis::detail
