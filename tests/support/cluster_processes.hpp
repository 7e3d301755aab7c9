#pragma once

/// @file
/// A cluster of `trellis-demo` processes on one real nats-server, for tests
/// that start, kill and restart dispatchers and workers: any number of each,
/// every one started with the flags the test gives and stopped by its PID
/// (SIGKILL from the destructors when a check fails first). The generic
/// `trellis` client runs its commands to completion, and `trellis submit`
/// also in the background. Needs the CMake definitions TRELLIS_DEMO_BIN and
/// TRELLIS_CLI_BIN.

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

class cluster_processes {
 public:
  /// `common` goes to every dispatcher, worker and client of the cluster,
  /// e.g. {"--partitions", "2"}; `servers` to every dispatcher and worker
  /// only, e.g. {"--ack-wait-ms", "2000"}. `server` configures the
  /// nats-server (authorization, TLS); `env` ("NAME=value") is set for every
  /// process and client of the cluster, e.g. credentials.
  cluster_processes(std::string ns, std::vector<std::string> common, std::vector<std::string> servers = {},
                    nats_server_options server = {}, std::vector<std::string> env = {})
      : server_(std::move(server)),
        ns_(std::move(ns)),
        common_(std::move(common)),
        servers_(std::move(servers)),
        env_(std::move(env)) {}

  const temp_dir& dir() const { return dir_; }
  std::string url() const { return server_.url(); }
  /// The nats-server, for its JetStream report (`consumer_backlog`, ...).
  const nats_server& server() const { return server_; }
  const std::string& ns() const { return ns_; }

  /// Starts `trellis-demo dispatcher --db DB` plus the common and `extra` flags.
  child_process& start_dispatcher(const std::string& db, std::vector<std::string> extra = {}) {
    return start("dispatcher", {"--db", db}, std::move(extra));
  }

  /// Starts `trellis-demo worker` with the common and `extra` flags.
  child_process& start_worker(std::vector<std::string> extra = {}) { return start("worker", {}, std::move(extra)); }

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

  /// What every dispatcher and worker wrote to stderr, for failure messages.
  std::string logs() const {
    std::string text;
    for (const auto& [name, p] : processes_) {
      text += name + " stderr:\n" + p->stderr_text();
    }
    return text;
  }

 private:
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
    argv.insert(argv.end(), common_.begin(), common_.end());
    argv.insert(argv.end(), servers_.begin(), servers_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto name = command + "-" + std::to_string(processes_.size());
    processes_.emplace_back(name, std::make_unique<child_process>(argv, dir_.file(name + ".out"),
                                                                  dir_.file(name + ".err"), env_));
    return *processes_.back().second;
  }

  std::vector<std::string> client_argv(const std::string& file, std::vector<std::string> extra) const {
    std::vector<std::string> argv{TRELLIS_CLI_BIN, "submit", file, "--broker", url(), "--namespace", ns_};
    argv.insert(argv.end(), common_.begin(), common_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  temp_dir dir_;
  nats_server server_;
  std::string ns_;
  std::vector<std::string> common_;
  std::vector<std::string> servers_;
  std::vector<std::string> env_;
  std::vector<std::pair<std::string, std::unique_ptr<child_process>>> processes_;
  std::vector<std::unique_ptr<child_process>> clients_running_;
  int clients_ = 0;
};

}  // namespace trellis::test
