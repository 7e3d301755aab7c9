#include "trellis/cluster_node.hpp"

#include "trellis/actors/dispatcher.hpp"
#include "trellis/actors/interfaces.hpp"
#include "trellis/actors/supervisor.hpp"
#include "trellis/actors/worker_pool.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/metrics.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/transport/nats_transport.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/logger.hpp>
#include <caf/scoped_actor.hpp>

#include <algorithm>
#include <iostream>
#include <mutex>
#include <thread>

namespace trellis::detail {

namespace {

nats_config nats_config_for(const cluster_options& opts, const std::string& client_name) {
  nats_config cfg;
  cfg.urls = opts.broker_urls;
  cfg.ns = opts.ns;
  cfg.client_name = client_name;
  cfg.ack_wait = opts.ack_wait;
  cfg.replicas = opts.replicas;
  return cfg;
}

}  // namespace

class cluster_node_core {
 public:
  cluster_node_core(std::shared_ptr<nats_transport> bus, supervisor_config sup) : bus_(std::move(bus)) {
    caf_cfg_.set("scheduler.max-threads", 2);
    caf_cfg_.set("logger.verbosity", caf::atom("quiet"));
    system_ = std::make_unique<caf::actor_system>(caf_cfg_);
    supervisor_ = spawn_supervisor(*system_, std::move(sup));
    // CAF 0.17 pins its logger to every thread that spawns; see the logger
    // caveat in docs/architecture.md.
    caf::logger::set_current_actor_system(nullptr);
  }

  ~cluster_node_core() { shutdown(); }
  cluster_node_core(const cluster_node_core&) = delete;
  cluster_node_core& operator=(const cluster_node_core&) = delete;

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

cluster_node::cluster_node(std::unique_ptr<cluster_node_core> core) : core_(std::move(core)) {}

cluster_node::~cluster_node() = default;

void cluster_node::shutdown() { core_->shutdown(); }

expected<std::unique_ptr<cluster_node>> cluster_node::start_worker(const cluster_options& opts, task_registry tasks) {
  if (tasks.empty()) {
    return error{errc::invalid_config, "a worker needs task handlers; this binary registers none"};
  }
  if (opts.fetch_batch == 0) {
    return error{errc::invalid_config, "fetch_batch: must be at least 1"};
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
  sup.workers = std::move(workers);
  return std::unique_ptr<cluster_node>{new cluster_node{std::make_unique<cluster_node_core>(shared, std::move(sup))}};
}

expected<std::unique_ptr<cluster_node>> cluster_node::start_dispatcher(const cluster_options& opts,
                                                                       const task_registry& tasks) {
  store_options store_opts;
  std::shared_ptr<sqlite_store> store = sqlite_store::open(opts.db, store_opts);
  auto cfg = nats_config_for(opts, "trellis-dispatcher");
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
  for (const auto& name : tasks.names()) {
    sup.dispatcher.defaults.emplace(name, tasks.find(name)->defaults);
  }
  // Called after the commit that finished the workflow, on the dispatcher's
  // thread. Core NATS: a client that is not listening right now asks the
  // store (`status`) instead.
  std::weak_ptr<nats_transport> weak = shared;
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
  return std::unique_ptr<cluster_node>{new cluster_node{std::make_unique<cluster_node_core>(shared, std::move(sup))}};
}

}  // namespace trellis::detail
