#pragma once

/// @file
/// A cluster of `trellis-demo` processes on real NATS, for tests that start,
/// kill and restart dispatchers and workers: any number of each, every one
/// started with the flags the test gives and stopped by its PID (SIGKILL
/// from the destructors when a check fails first). The broker is either a
/// nats-server of the cluster's own or, through `on_broker`, servers the
/// test started and controls itself (one it restarts, a `nats_cluster`).
/// The generic `trellis` client runs its commands to completion, and
/// `trellis submit` also in the background. Needs the CMake definitions
/// TRELLIS_DEMO_BIN and TRELLIS_CLI_BIN.

#include "support/child_process.hpp"
#include "support/nats_server.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#if !defined(TRELLIS_DEMO_BIN) || !defined(TRELLIS_CLI_BIN)
#error "TRELLIS_DEMO_BIN and TRELLIS_CLI_BIN must name the binaries (tests/CMakeLists.txt sets them)"
#endif

namespace trellis::test {

class cluster_processes {
 public:
  /// A cluster on a nats-server of its own, configured by `server`
  /// (authorization, TLS). `common` goes to every dispatcher, worker and
  /// client of the cluster, e.g. {"--partitions", "2"}; `servers` to every
  /// dispatcher and worker only, e.g. {"--ack-wait-ms", "2000"} or
  /// {"--replicas", "3"}. `env` ("NAME=value") is set for every process and
  /// client of the cluster, e.g. credentials.
  cluster_processes(std::string ns, std::vector<std::string> common, std::vector<std::string> servers = {},
                    nats_server_options server = {}, std::vector<std::string> env = {})
      : own_server_(std::make_unique<nats_server>(std::move(server))),
        broker_(own_server_->url()),
        ns_(std::move(ns)),
        common_(std::move(common)),
        servers_(std::move(servers)),
        env_(std::move(env)) {}

  /// A cluster on servers the test runs (and may stop, kill or restart):
  /// `broker` is the `--broker` value, one URL or several comma-separated
  /// (`nats_cluster::urls()`). The servers must outlive the cluster.
  static cluster_processes on_broker(std::string broker, std::string ns, std::vector<std::string> common,
                                     std::vector<std::string> servers = {}, std::vector<std::string> env = {}) {
    return cluster_processes{external_broker{}, std::move(broker),  std::move(ns),
                             std::move(common), std::move(servers), std::move(env)};
  }

  const temp_dir& dir() const { return dir_; }
  /// The `--broker` value every process gets (several URLs comma-separated
  /// on a `nats_cluster`).
  const std::string& url() const { return broker_; }
  /// The nats-server the cluster started, for its JetStream report
  /// (`consumer_backlog`, ...). Only for a cluster that owns its server.
  const nats_server& server() const {
    REQUIRE(own_server_);
    return *own_server_;
  }
  const std::string& ns() const { return ns_; }

  /// The store of a cluster with one dispatcher: pass it to every start of
  /// that dispatcher, so a restarted one resumes where the last one ended.
  std::string db() const { return dir_.file("dispatcher.db"); }

  /// Starts `trellis-demo dispatcher --db DB` plus the common and `extra`
  /// flags (again on the same store for a restart).
  child_process& start_dispatcher(const std::string& db, std::vector<std::string> extra = {}) {
    return start("dispatcher", {"--db", db}, std::move(extra));
  }

  /// Starts `trellis-demo worker` with the common and `extra` flags.
  child_process& start_worker(std::vector<std::string> extra = {}) { return start("worker", {}, std::move(extra)); }

  /// Starts another worker binary (one made with `trellis::worker_main`,
  /// which takes no subcommand) with the common and `extra` flags.
  child_process& start_worker_binary(const std::string& binary, std::vector<std::string> extra = {}) {
    return start_argv("worker", {binary, "--broker", url(), "--namespace", ns_}, std::move(extra));
  }

  /// Waits until `process` says it is running (it connected and declared
  /// its streams and consumers); fails the test if it exits instead.
  void wait_running(child_process& process) {
    bool up =
        wait_until([&] { return process.try_wait() || process.stderr_text().find(" running") != std::string::npos; },
                   max_test_wait, "a cluster process to start");
    INFO(logs());
    REQUIRE(up);
    REQUIRE_FALSE(process.try_wait());
  }

  /// SIGTERM to every dispatcher and worker still running, workers first:
  /// each drains and exits with 143. Returns whether all of them did.
  bool stop_all() {
    bool clean = true;
    for (bool workers : {true, false}) {
      for (auto& p : processes_) {
        if (p.is_worker == workers && !p.process->try_wait()) {
          p.process->kill(SIGTERM);
          auto status = p.process->wait_for(max_test_wait);
          clean = clean && status && *status == 143;
        }
      }
    }
    return clean;
  }

  /// Runs `trellis submit FILE` with the common and `extra` flags to the end.
  command_result submit(const std::string& file, std::vector<std::string> extra = {}) {
    return run_to_end(client_argv(file, std::move(extra)), "submit-");
  }

  /// Runs the generic client, `trellis ARGS... --broker URL --namespace NS`
  /// with the common flags, to the end (e.g. {"status", id}).
  command_result client(std::vector<std::string> args) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", url(), "--namespace", ns_});
    argv.insert(argv.end(), common_.begin(), common_.end());
    return run_to_end(std::move(argv), "client-");
  }

  /// Runs `trellis ARGS...` with no flag added to the end, e.g. a command
  /// on a dispatcher's store: {"status", id, "--db", db}.
  command_result cli(std::vector<std::string> args) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_to_end(std::move(argv), "cli-");
  }

  /// Starts `trellis submit FILE` in the background (for `--wait` clients
  /// that outlive a dispatcher).
  child_process& start_client(const std::string& file, std::vector<std::string> extra = {}) {
    auto n = std::to_string(++clients_);
    clients_running_.push_back(std::make_unique<child_process>(client_argv(file, std::move(extra)),
                                                               dir_.file("client-" + n + ".out"),
                                                               dir_.file("client-" + n + ".err"), env_));
    return *clients_running_.back();
  }

  /// Starts `trellis dashboard --broker URL --namespace NS` with the common
  /// and `extra` flags (e.g. {"--http", "127.0.0.1:0"}); stopped as the
  /// dispatchers are.
  child_process& start_dashboard(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{TRELLIS_CLI_BIN, "dashboard", "--broker", url(), "--namespace", ns_};
    argv.insert(argv.end(), common_.begin(), common_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto name = "dashboard-" + std::to_string(processes_.size());
    processes_.push_back(
        {name, false, std::make_unique<child_process>(argv, dir_.file(name + ".out"), dir_.file(name + ".err"), env_)});
    return *processes_.back().process;
  }

  /// What every dispatcher and worker wrote to stderr, for failure messages.
  std::string logs() const {
    std::string text;
    for (const auto& p : processes_) {
      text += p.name + " stderr:\n" + p.process->stderr_text();
    }
    return text;
  }

 private:
  struct started_process {
    std::string name;
    bool is_worker;
    std::unique_ptr<child_process> process;
  };

  /// Tells the constructor of `on_broker` from the public one.
  struct external_broker {};

  cluster_processes(external_broker, std::string broker, std::string ns, std::vector<std::string> common,
                    std::vector<std::string> servers, std::vector<std::string> env)
      : broker_(std::move(broker)),
        ns_(std::move(ns)),
        common_(std::move(common)),
        servers_(std::move(servers)),
        env_(std::move(env)) {}

  /// Runs `argv` to the end (bounded by `max_test_wait`), its output kept
  /// in files named `capture` and a number.
  command_result run_to_end(std::vector<std::string> argv, const std::string& capture) {
    auto r = run_command(std::move(argv), dir_.file(capture + std::to_string(++clients_)), max_test_wait, env_);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << logs());
    REQUIRE_FALSE(r.timed_out);
    return r;
  }

  child_process& start(const std::string& command, std::vector<std::string> own, std::vector<std::string> extra) {
    std::vector<std::string> argv{TRELLIS_DEMO_BIN, command, "--broker", url(), "--namespace", ns_};
    argv.insert(argv.end(), own.begin(), own.end());
    return start_argv(command, std::move(argv), std::move(extra));
  }

  child_process& start_argv(const std::string& command, std::vector<std::string> argv, std::vector<std::string> extra) {
    argv.insert(argv.end(), common_.begin(), common_.end());
    argv.insert(argv.end(), servers_.begin(), servers_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto name = command + "-" + std::to_string(processes_.size());
    processes_.push_back(
        {name, command == "worker",
         std::make_unique<child_process>(argv, dir_.file(name + ".out"), dir_.file(name + ".err"), env_)});
    return *processes_.back().process;
  }

  std::vector<std::string> client_argv(const std::string& file, std::vector<std::string> extra) const {
    std::vector<std::string> argv{TRELLIS_CLI_BIN, "submit", file, "--broker", url(), "--namespace", ns_};
    argv.insert(argv.end(), common_.begin(), common_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  temp_dir dir_;
  std::unique_ptr<nats_server> own_server_;  // null on a broker the test runs
  std::string broker_;
  std::string ns_;
  std::vector<std::string> common_;
  std::vector<std::string> servers_;
  std::vector<std::string> env_;
  std::vector<started_process> processes_;
  std::vector<std::unique_ptr<child_process>> clients_running_;
  int clients_ = 0;
};

}  // namespace trellis::test
