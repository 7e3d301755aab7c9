#pragma once

/// @file
/// The NATS transport under test on a real nats-server: a configuration for
/// a test server, both faces of one connection, and the ways tests fetch
/// tasks and collect events. For tests/integration/nats_*_test.cpp.

#include "support/nats_server.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/nats_transport.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace trellis::test {

using detail::cluster_bus;
using detail::delivery;
using detail::nats_config;
using detail::nats_transport;
using detail::outgoing_task;
using namespace std::chrono_literals;

inline nats_config config_for(const nats_server& server) {
  nats_config cfg;
  cfg.urls = {server.url()};
  cfg.ns = "test";
  cfg.task_queues = {"q"};
  cfg.consume_events = true;
  // Short enough that redelivery tests finish quickly, long enough that a
  // loaded CI machine acks in time in the other tests.
  cfg.ack_wait = 2'000ms;
  return cfg;
}

/// Both faces of one connection: the transport under test, and the cluster
/// bus beside it (queue depth, exhausted tasks, done notices, connection
/// state). `->` and `*` reach the transport.
struct endpoints {
  std::shared_ptr<nats_transport> transport;
  std::shared_ptr<cluster_bus> bus;

  nats_transport* operator->() const { return transport.get(); }
  nats_transport& operator*() const { return *transport; }
  /// Drops both faces, which closes the connection.
  void reset() {
    transport.reset();
    bus.reset();
  }
};

inline endpoints connect(const nats_config& cfg) {
  auto t = trellis::detail::connect_nats(cfg);
  INFO("connect: " << (t ? std::string{"ok"} : to_string(t.error())));
  REQUIRE(t);
  return endpoints{t->transport, t->bus};
}

inline outgoing_task task(const std::string& id, const std::string& bytes) {
  return outgoing_task{id, bytes, 0, {}, false, ""};
}

/// Fetches from `queues` until `n` deliveries are in hand (or the test's
/// bound passes); each fetch is itself the wait.
inline std::vector<delivery> fetch_n(nats_transport& t, const std::vector<std::string>& queues, std::size_t n,
                                     const char* what) {
  std::vector<delivery> got;
  wait_until(
      [&] {
        for (auto& d : t.fetch_tasks(queues, n - got.size(), 200ms)) {
          got.push_back(std::move(d));
        }
        return got.size() >= n;
      },
      max_test_wait, what);
  return got;
}

/// What a worker that dies right after one fetch got: it fetches from
/// `queues` on a connection of its own, and is gone when this returns, its
/// deliveries unacked and no longer kept alive (while a transport lives, it
/// marks what it holds in progress, so holding is not dying).
inline std::vector<delivery> fetch_and_die(const nats_config& cfg, const std::vector<std::string>& queues,
                                           std::size_t max) {
  auto worker = connect(cfg);
  auto got = worker->fetch_tasks(queues, max, 100ms);
  worker.reset();
  return got;
}

/// Collects what the event sink receives, from the transport's thread.
struct event_log {
  std::mutex mutex;
  std::vector<delivery> received;

  std::function<void(std::vector<delivery>)> sink() {
    return [this](std::vector<delivery> batch) {
      std::lock_guard<std::mutex> guard{mutex};
      for (auto& d : batch) {
        received.push_back(std::move(d));
      }
    };
  }
  std::vector<delivery> snapshot() {
    std::lock_guard<std::mutex> guard{mutex};
    return received;
  }
};

}  // namespace trellis::test
