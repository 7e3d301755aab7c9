#pragma once

/// @file
/// A cluster with one dispatcher, for the control tests: a nats-server the
/// fixture starts, one `trellis-demo dispatcher`, any number of
/// `trellis-demo worker` processes, and the generic `trellis` client run as
/// a command. Every process is stopped by its PID: by the test, or by the
/// destructors (SIGKILL) when a check fails first. Needs the CMake
/// definitions TRELLIS_DEMO_BIN and TRELLIS_CLI_BIN. For several dispatchers,
/// partitions or flags of your own, see cluster_processes.hpp.

#include "support/child_process.hpp"
#include "support/nats_server.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace trellis::test {

/// How a worker process of the fixture runs.
struct worker_options {
  std::string concurrency = "2";
  std::string fetch_batch = "4";
  /// Comma-separated queues; empty serves every queue.
  std::string queues;
};

class control_cluster {
 public:
  control_cluster(std::string ns, std::string ack_wait_ms)
      : ns_(std::move(ns)), ack_wait_ms_(std::move(ack_wait_ms)) {}

  const temp_dir& dir() const { return dir_; }
  std::string url() const { return server_.url(); }
  const std::string& ns() const { return ns_; }
  std::string db() const { return dir_.file("dispatcher.db"); }

  child_process& start_dispatcher() {
    dispatcher_ = std::make_unique<child_process>(
        std::vector<std::string>{TRELLIS_DEMO_BIN, "dispatcher", "--broker", url(), "--namespace", ns_, "--db", db(),
                                 "--ack-wait-ms", ack_wait_ms_},
        dir_.file("dispatcher.out"), dir_.file("dispatcher.err"));
    return *dispatcher_;
  }

  child_process& start_worker(const worker_options& opts = {}) {
    auto n = std::to_string(workers_.size());
    std::vector<std::string> argv{TRELLIS_DEMO_BIN, "worker",        "--broker",         url(),
                                  "--namespace",    ns_,             "--concurrency",    opts.concurrency,
                                  "--fetch-batch",  opts.fetch_batch, "--ack-wait-ms",   ack_wait_ms_};
    if (!opts.queues.empty()) {
      argv.insert(argv.end(), {"--queues", opts.queues});
    }
    workers_.push_back(std::make_unique<child_process>(std::move(argv), dir_.file("worker-" + n + ".out"),
                                                       dir_.file("worker-" + n + ".err")));
    return *workers_.back();
  }

  child_process& dispatcher() { return *dispatcher_; }

  /// Runs the generic client, `trellis ARGS... --broker URL --namespace NS`,
  /// to completion (bounded by `max_test_wait`).
  command_result client(std::vector<std::string> args) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", url(), "--namespace", ns_});
    auto r = run_command(std::move(argv), dir_.file("client-" + std::to_string(++commands_)), max_test_wait);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << logs());
    REQUIRE_FALSE(r.timed_out);
    return r;
  }

  /// Runs `trellis ARGS... --db <the dispatcher's store>` to completion.
  command_result store_client(std::vector<std::string> args) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--db", db()});
    auto r = run_command(std::move(argv), dir_.file("client-" + std::to_string(++commands_)), max_test_wait);
    REQUIRE_FALSE(r.timed_out);
    return r;
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
  temp_dir dir_;
  nats_server server_;
  std::string ns_;
  std::string ack_wait_ms_;
  std::unique_ptr<child_process> dispatcher_;
  std::vector<std::unique_ptr<child_process>> workers_;
  int commands_ = 0;
};

}  // namespace trellis::test
