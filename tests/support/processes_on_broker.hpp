#pragma once

/// @file
/// The processes of a Trellis cluster for multi-process tests: one
/// `trellis-demo dispatcher` and any number of `trellis-demo worker`s on the
/// NATS servers a test started (`nats_server` or `nats_cluster`), plus the
/// generic `trellis submit` client. Every process is started with flags
/// only, its output captured in the test's directory, and stopped by its PID:
/// by the test, or by the destructors (SIGKILL) when a check fails first.
///
/// The binaries come from CMake: TRELLIS_DEMO_BIN and TRELLIS_CLI_BIN.

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#if !defined(TRELLIS_DEMO_BIN) || !defined(TRELLIS_CLI_BIN)
#error "TRELLIS_DEMO_BIN and TRELLIS_CLI_BIN must name the binaries (tests/CMakeLists.txt sets them)"
#endif

namespace trellis::test {

/// What every process of one `processes_on_broker` is given.
struct cluster_process_options {
  /// `--broker`: one URL or several, comma-separated.
  std::string broker;
  /// `--namespace`.
  std::string ns = "default";
  /// `--ack-wait-ms` of the dispatcher and the workers: short where a test
  /// waits for redelivery.
  std::string ack_wait_ms = "30000";
  /// `--replicas` of the dispatcher and the workers (they declare the streams).
  std::string replicas = "1";
  /// Worker `--concurrency` and `--fetch-batch`.
  std::string worker_concurrency = "2";
  std::string worker_fetch_batch = "4";
};

/// One dispatcher (store `db()` in `dir`) and its workers.
class processes_on_broker {
 public:
  processes_on_broker(const temp_dir& dir, cluster_process_options options)
      : dir_(dir), options_(std::move(options)) {}

  const cluster_process_options& options() const noexcept { return options_; }

  /// The dispatcher's SQLite store.
  std::string db() const { return dir_.file("dispatcher.db"); }

  /// Starts the dispatcher (again, after the previous one ended).
  child_process& start_dispatcher() {
    auto n = std::to_string(++dispatcher_starts_);
    dispatcher_ = std::make_unique<child_process>(
        std::vector<std::string>{TRELLIS_DEMO_BIN, "dispatcher", "--broker", options_.broker, "--namespace",
                                 options_.ns, "--db", db(), "--ack-wait-ms", options_.ack_wait_ms, "--replicas",
                                 options_.replicas},
        dir_.file("dispatcher-" + n + ".out"), dir_.file("dispatcher-" + n + ".err"));
    return *dispatcher_;
  }

  /// Starts one more worker serving every queue.
  child_process& start_worker() {
    auto n = std::to_string(workers_.size());
    workers_.push_back(std::make_unique<child_process>(
        std::vector<std::string>{TRELLIS_DEMO_BIN, "worker", "--broker", options_.broker, "--namespace", options_.ns,
                                 "--concurrency", options_.worker_concurrency, "--fetch-batch",
                                 options_.worker_fetch_batch, "--ack-wait-ms", options_.ack_wait_ms, "--replicas",
                                 options_.replicas},
        dir_.file("worker-" + n + ".out"), dir_.file("worker-" + n + ".err")));
    return *workers_.back();
  }

  /// Waits until `process` says it is running (it connected and declared
  /// its streams and consumers); fails the test if it exits instead.
  void wait_running(child_process& process) {
    bool up = wait_until(
        [&] { return process.try_wait() || process.stderr_text().find(" running") != std::string::npos; },
        max_test_wait, "a cluster process to start");
    INFO(logs());
    REQUIRE(up);
    REQUIRE_FALSE(process.try_wait());
  }

  child_process& dispatcher() { return *dispatcher_; }
  child_process& worker(std::size_t i) { return *workers_.at(i); }
  std::size_t worker_count() const noexcept { return workers_.size(); }

  /// `trellis submit FILE` with this cluster's broker and namespace, plus
  /// `extra` (e.g. `--wait`), run to completion.
  command_result submit(const std::string& file, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN, "submit", file, "--broker", options_.broker, "--namespace",
                                  options_.ns};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_command(std::move(argv), dir_.file("submit-" + std::to_string(++submits_)), max_test_wait);
    INFO("submit stdout:\n" << r.out << "\nsubmit stderr:\n" << r.err << "\n" << logs());
    REQUIRE_FALSE(r.timed_out);
    return r;
  }

  /// SIGTERM to every process still running, workers first: each drains and
  /// exits with 143. Returns whether all of them did.
  bool stop_all() {
    bool clean = true;
    for (auto& w : workers_) {
      if (!w->try_wait()) {
        w->kill(SIGTERM);
        auto status = w->wait_for(max_test_wait);
        clean = clean && status && *status == 143;
      }
    }
    if (dispatcher_ && !dispatcher_->try_wait()) {
      dispatcher_->kill(SIGTERM);
      auto status = dispatcher_->wait_for(max_test_wait);
      clean = clean && status && *status == 143;
    }
    return clean;
  }

  /// What every process wrote to stderr, for failure messages.
  std::string logs() const {
    std::string text = "dispatcher stderr:\n" + (dispatcher_ ? dispatcher_->stderr_text() : std::string{});
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      text += "worker " + std::to_string(i) + " stderr:\n" + workers_[i]->stderr_text();
    }
    return text;
  }

 private:
  const temp_dir& dir_;
  cluster_process_options options_;
  std::unique_ptr<child_process> dispatcher_;
  std::vector<std::unique_ptr<child_process>> workers_;
  int dispatcher_starts_ = 0;
  int submits_ = 0;
};

}  // namespace trellis::test
