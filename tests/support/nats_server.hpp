#pragma once

/// @file
/// A real `nats-server` with JetStream for integration tests, as nats.c's own
/// tests run it: its own store directory, a port the kernel picks (read back
/// from the server's ports file, so there is no free-port race), readiness
/// checked by connecting in a bounded loop, and stopped by the PID we hold.
///
/// The binary comes from CMake: `find_program(NATS_SERVER nats-server)`,
/// passed as the compile definition TRELLIS_NATS_SERVER_BIN.

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef TRELLIS_NATS_SERVER_BIN
#error "TRELLIS_NATS_SERVER_BIN must name the nats-server binary (tests/CMakeLists.txt sets it)"
#endif

namespace trellis::test {

/// How a `nats_server` is started.
struct nats_server_options {
  /// Server configuration (nats-server's own format), written to a file in
  /// the server's directory and passed with `-c`, e.g.
  /// `authorization { user: a, password: b }`, `authorization { token: t }`
  /// or a `tls { ... }` block (support/tls_certs.hpp makes one; `url()`
  /// stays `nats://`, and a client with a CA file upgrades to TLS). Empty: no
  /// file.
  std::string config_text;
  /// Further command-line arguments.
  std::vector<std::string> extra_args;
  /// How long start-up (ports file plus a successful connect) may take.
  std::chrono::milliseconds start_timeout{20'000};
  /// How long a SIGTERM'd server may take to exit before it gets SIGKILL.
  std::chrono::milliseconds stop_timeout{10'000};
};

/// One nats-server process bound to 127.0.0.1 with JetStream enabled. Not
/// copyable. The destructor stops it (SIGTERM, then SIGKILL after
/// `stop_timeout`) and removes its store. Every failure to start throws
/// `std::runtime_error` with the server's log, which fails the test.
class nats_server {
 public:
  explicit nats_server(nats_server_options options = {}) : options_(std::move(options)) {
    std::filesystem::create_directories(store_dir());
    if (!options_.config_text.empty()) {
      std::ofstream out{config_path()};
      out << options_.config_text << '\n';
      if (!out) {
        throw std::runtime_error("cannot write nats-server config " + config_path());
      }
    }
    start();
  }

  ~nats_server() { stop(); }

  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  /// `nats://127.0.0.1:<port>`.
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

  /// The client port; the same across restarts.
  int port() const noexcept { return port_; }

  /// The JetStream store directory; the same across restarts.
  std::string store_dir() const { return dir_.file("store"); }

  /// Whether the process runs.
  bool is_running() const noexcept { return process_ != nullptr; }

  /// The server's PID while it runs, else 0 (for /proc readings).
  pid_t pid() const noexcept { return process_ ? process_->pid() : 0; }

  /// Starts the server if it is stopped: on a port the kernel picks the first
  /// time, on that same port afterwards, always with the same store.
  void start() {
    if (process_) {
      return;
    }
    ++starts_;
    std::vector<std::string> argv{TRELLIS_NATS_SERVER_BIN};
    if (!options_.config_text.empty()) {
      argv.insert(argv.end(), {"-c", config_path()});
    }
    argv.insert(argv.end(), {"-a", "127.0.0.1", "-p", port_ == 0 ? std::string{"-1"} : std::to_string(port_), "-js",
                             "-sd", store_dir(), "--ports_file_dir", dir_.path().string()});
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    auto prefix = dir_.file("server-" + std::to_string(starts_));
    process_ = std::make_unique<child_process>(argv, prefix + ".out", prefix + ".log");
    auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    auto bound = read_ports_file(deadline);
    if (port_ == 0) {
      port_ = bound;
    } else if (bound != port_) {
      fail_start("came up on port " + std::to_string(bound) + " instead of " + std::to_string(port_));
    }
    wait_ready(deadline);
  }

  /// Stops the server gracefully: SIGTERM, then SIGKILL after `stop_timeout`.
  /// Its store stays, for `start()`.
  void stop() {
    if (!process_) {
      return;
    }
    process_->kill(SIGTERM);
    process_->wait_for(options_.stop_timeout);  // SIGKILLs it on timeout
    remove_ports_file();
    process_.reset();
  }

  /// Kills the server with SIGKILL, as a crash would. Its store stays.
  void kill() {
    if (!process_) {
      return;
    }
    process_->kill(SIGKILL);
    process_->wait();
    remove_ports_file();
    process_.reset();
  }

  /// `stop()` then `start()`: same port, same store.
  void restart() {
    stop();
    start();
  }

  /// What the current (or last) server process wrote to stderr.
  std::string log() const {
    std::ifstream in{dir_.file("server-" + std::to_string(starts_)) + ".log"};
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string config_path() const { return dir_.file("server.conf"); }

  std::string ports_file() const {
    // nats-server names it <executable>_<pid>.ports.
    auto name = std::filesystem::path{TRELLIS_NATS_SERVER_BIN}.filename().string();
    return dir_.file(name + "_" + std::to_string(process_->pid()) + ".ports");
  }

  void remove_ports_file() {
    std::error_code ignored;
    std::filesystem::remove(ports_file(), ignored);
  }

  [[noreturn]] void fail_start(const std::string& why) {
    auto text = "nats-server " + why + "; its log:\n" + log();
    kill();
    throw std::runtime_error(text);
  }

  // Polls, with a growing pause, for a condition the server brings about;
  // the pause paces the polling and never stands in for the condition.
  template <class Predicate>
  bool poll_until(std::chrono::steady_clock::time_point deadline, Predicate&& done) {
    auto pause = std::chrono::milliseconds{1};
    for (;;) {
      if (done()) {
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds{50});
    }
  }

  /// The port of the client url in the ports file, which the server writes
  /// as {"nats":["nats://127.0.0.1:PORT"],...} once it listens (with TLS
  /// configured: "tls://127.0.0.1:PORT"); 0 if the file is not (completely)
  /// there yet.
  static int parse_ports_file(const std::string& text) {
    auto url = text.find("\"nats://");
    if (url == std::string::npos) {
      url = text.find("\"tls://");
    }
    auto end = url == std::string::npos ? url : text.find('"', url + 1);
    if (end == std::string::npos) {
      return 0;
    }
    auto colon = text.rfind(':', end);
    if (colon == std::string::npos || colon < url || colon + 1 == end) {
      return 0;
    }
    auto digits = text.substr(colon + 1, end - colon - 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 5) {
      return 0;
    }
    return std::stoi(digits);
  }

  int read_ports_file(std::chrono::steady_clock::time_point deadline) {
    int port = 0;
    bool found = poll_until(deadline, [&] {
      if (process_->try_wait()) {
        fail_start("exited during start-up");
      }
      std::ifstream in{ports_file()};
      std::stringstream text;
      text << in.rdbuf();
      port = parse_ports_file(text.str());
      return port != 0;
    });
    if (!found) {
      fail_start("wrote no ports file " + ports_file() + " within " + std::to_string(options_.start_timeout.count()) +
                 " ms");
    }
    return port;
  }

  /// Ready means a client can connect and is greeted with the server's INFO.
  static bool greets(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      return false;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      pollfd p{fd, POLLIN, 0};
      char buf[5] = {};
      ok = ::poll(&p, 1, 1000) == 1 && ::recv(fd, buf, 4, 0) == 4 && std::string{buf} == "INFO";
    }
    ::close(fd);
    return ok;
  }

  void wait_ready(std::chrono::steady_clock::time_point deadline) {
    if (!poll_until(deadline, [&] {
          if (process_->try_wait()) {
            fail_start("exited during start-up");
          }
          return greets(port_);
        })) {
      fail_start("accepted no client on port " + std::to_string(port_));
    }
  }

  nats_server_options options_;
  temp_dir dir_;
  std::unique_ptr<child_process> process_;
  int port_ = 0;
  int starts_ = 0;
};

}  // namespace trellis::test
