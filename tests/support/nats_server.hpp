#pragma once

/// @file
/// A real `nats-server` with JetStream for integration tests, as nats.c's own
/// tests run it: its own store directory, a port the kernel picks (read back
/// from the server's ports file, so there is no free-port race), readiness
/// checked by connecting in a bounded loop, and stopped by the PID we hold.
/// `nats_cluster` runs several of them as one JetStream cluster.
///
/// The binary comes from CMake: `find_program(NATS_SERVER nats-server)`,
/// passed as the compile definition TRELLIS_NATS_SERVER_BIN.

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#include <nlohmann/json.hpp>

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
#include <utility>
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
  /// `server_name`, which JetStream clusters need; empty: the server's id.
  std::string server_name;
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

  /// Whether the server ended on its own (a crash), while this object still
  /// counts it as running: neither `stop()` nor `kill()` ended it.
  bool exited_on_its_own() { return process_ && process_->try_wait().has_value(); }

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
    // The monitoring port (-m -1: the kernel picks it) serves `monitor()`.
    argv.insert(argv.end(), {"-a", "127.0.0.1", "-p", port_ == 0 ? std::string{"-1"} : std::to_string(port_), "-m",
                             "-1", "-js", "-sd", store_dir(), "--ports_file_dir", dir_.path().string()});
    if (!options_.server_name.empty()) {
      argv.insert(argv.end(), {"-n", options_.server_name});
    }
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    auto prefix = dir_.file("server-" + std::to_string(starts_));
    process_ = std::make_unique<child_process>(argv, prefix + ".out", prefix + ".log");
    auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    auto [bound, monitoring] = read_ports_file(deadline);
    monitoring_port_ = monitoring;
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

  /// The body of `GET <path>` on the server's monitoring port (e.g.
  /// `/jsz?streams=true&consumers=true`), or "" when the server is stopped or
  /// does not answer within `timeout`.
  std::string monitor(const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds{5}) const {
    if (!process_ || monitoring_port_ == 0) {
      return "";
    }
    return http_get(monitoring_port_, path, timeout);
  }

  /// The server's JetStream report (`/jsz` with streams, consumers and their
  /// configurations) as JSON; null when the server does not answer.
  nlohmann::json jetstream_report() const {
    auto body = monitor("/jsz?streams=true&consumers=true&config=true");
    auto doc = nlohmann::json::parse(body, nullptr, false);
    return doc.is_discarded() ? nlohmann::json{} : doc;
  }

  /// The JetStream report's entry for `stream` (its `state`: messages,
  /// first_seq, last_seq; its `consumer_detail`), or null when the server
  /// does not report it.
  nlohmann::json stream_report(const std::string& stream) const {
    auto report = jetstream_report();
    for (const auto& account : report.value("account_details", nlohmann::json::array())) {
      for (const auto& s : account.value("stream_detail", nlohmann::json::array())) {
        if (s.value("name", "") == stream) {
          return s;
        }
      }
    }
    return nullptr;
  }

  /// The JetStream report's entry for `consumer` of `stream` (its counts:
  /// num_pending, num_ack_pending, num_redelivered, delivered, ack_floor),
  /// or null when the server does not report it.
  nlohmann::json consumer_report(const std::string& stream, const std::string& consumer) const {
    auto s = stream_report(stream);
    if (s.is_null()) {
      return nullptr;
    }
    for (const auto& c : s.value("consumer_detail", nlohmann::json::array())) {
      if (c.value("name", "") == consumer) {
        return c;
      }
    }
    return nullptr;
  }

  /// What `consumer` of `stream` still owes: messages not yet delivered
  /// (num_pending) plus messages delivered and not acked (num_ack_pending),
  /// per the JetStream report; nothing when the server does not report it.
  std::optional<std::uint64_t> consumer_backlog(const std::string& stream, const std::string& consumer) const {
    auto c = consumer_report(stream, consumer);
    if (c.is_null()) {
      return std::nullopt;
    }
    return c.value("num_pending", std::uint64_t{0}) + c.value("num_ack_pending", std::uint64_t{0});
  }

  /// What every consumer of `stream` still owes together (consumer_backlog
  /// summed), and how many consumers it has; nothing when the server does
  /// not report the stream. Messages no consumer's filter takes (a task no
  /// live worker registered) are not counted: they wait by design.
  std::optional<std::pair<std::uint64_t, std::size_t>> stream_backlog(const std::string& stream) const {
    auto s = stream_report(stream);
    if (s.is_null()) {
      return std::nullopt;
    }
    std::uint64_t owed = 0;
    std::size_t consumers = 0;
    for (const auto& c : s.value("consumer_detail", nlohmann::json::array())) {
      owed += c.value("num_pending", std::uint64_t{0}) + c.value("num_ack_pending", std::uint64_t{0});
      ++consumers;
    }
    return std::pair{owed, consumers};
  }

  /// One line per stream and consumer of the JetStream report, with the
  /// counts that tell a message waiting from one delivered and not acked:
  /// stream messages and sequences; consumer num_pending (not yet
  /// delivered), num_ack_pending (delivered, not acked), num_redelivered,
  /// delivered and ack-floor stream sequences. For failure messages.
  std::string jetstream_summary() const {
    auto report = jetstream_report();
    if (report.is_null()) {
      return "(no JetStream report from the server)\n";
    }
    std::ostringstream out;
    for (const auto& account : report.value("account_details", nlohmann::json::array())) {
      for (const auto& stream : account.value("stream_detail", nlohmann::json::array())) {
        auto state = stream.value("state", nlohmann::json::object());
        out << "stream " << stream.value("name", "?") << ": messages=" << state.value("messages", 0)
            << " first_seq=" << state.value("first_seq", 0) << " last_seq=" << state.value("last_seq", 0)
            << " num_deleted=" << state.value("num_deleted", 0) << "\n";
        for (const auto& c : stream.value("consumer_detail", nlohmann::json::array())) {
          out << "  consumer " << c.value("name", "?") << ": num_pending=" << c.value("num_pending", 0)
              << " num_ack_pending=" << c.value("num_ack_pending", 0)
              << " num_redelivered=" << c.value("num_redelivered", 0)
              << " delivered.stream_seq=" << c.value("delivered", nlohmann::json::object()).value("stream_seq", 0)
              << " ack_floor.stream_seq=" << c.value("ack_floor", nlohmann::json::object()).value("stream_seq", 0)
              << "\n";
        }
      }
    }
    return out.str();
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

  /// The port of the first url listed under `key` in the ports file, which
  /// the server writes once it listens as
  /// {"nats":["nats://127.0.0.1:PORT"],"monitoring":["http://127.0.0.1:PORT"]}
  /// (with TLS configured, the client url is "tls://127.0.0.1:PORT");
  /// 0 if the file or the entry is not (completely) there yet.
  static int port_in_ports_file(const std::string& text, const std::string& key) {
    auto entry = text.find("\"" + key + "\":[\"");
    if (entry == std::string::npos) {
      return 0;
    }
    auto url = entry + key.size() + 5;
    auto end = text.find('"', url);
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

  /// The client and monitoring ports from the ports file.
  std::pair<int, int> read_ports_file(std::chrono::steady_clock::time_point deadline) {
    int port = 0;
    int monitoring = 0;
    bool found = poll_until(deadline, [&] {
      if (process_->try_wait()) {
        fail_start("exited during start-up");
      }
      std::ifstream in{ports_file()};
      std::stringstream text;
      text << in.rdbuf();
      port = port_in_ports_file(text.str(), "nats");
      monitoring = port_in_ports_file(text.str(), "monitoring");
      return port != 0 && monitoring != 0;
    });
    if (!found) {
      fail_start("wrote no ports file " + ports_file() + " within " + std::to_string(options_.start_timeout.count()) +
                 " ms");
    }
    return {port, monitoring};
  }

  /// A socket connected to 127.0.0.1:`port`, or -1.
  static int connect_loopback(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      return -1;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  /// HTTP/1.0 GET on 127.0.0.1:`port`: the body, or "" on any failure. The
  /// server closes the connection after the answer, which ends the read.
  static std::string http_get(int port, const std::string& path, std::chrono::milliseconds timeout) {
    int fd = connect_loopback(port);
    if (fd < 0) {
      return "";
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    bool sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
    std::string response;
    while (sent) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
        response.clear();  // timed out: no partial answers
        break;
      }
      char buf[4096];
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      response.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    auto body = response.find("\r\n\r\n");
    if (response.compare(0, 12, "HTTP/1.0 200") != 0 && response.compare(0, 12, "HTTP/1.1 200") != 0) {
      return "";
    }
    return body == std::string::npos ? "" : response.substr(body + 4);
  }

  /// Ready means a client can connect and is greeted with the server's INFO.
  static bool greets(int port) {
    int fd = connect_loopback(port);
    if (fd < 0) {
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    char buf[5] = {};
    bool ok = ::poll(&p, 1, 1000) == 1 && ::recv(fd, buf, 4, 0) == 4 && std::string{buf} == "INFO";
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
  int monitoring_port_ = 0;
  int starts_ = 0;
};

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago: the
/// kernel picks them for sockets bound to port 0, which are closed again.
/// For the cluster ports of a `nats_cluster`, which every node must know
/// before any starts (the routes); client and monitoring ports never need it.
/// Another process could take one in between; that fails the start loudly.
inline std::vector<int> free_loopback_ports(std::size_t n) {
  std::vector<int> sockets;
  std::vector<int> ports;
  for (std::size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) {
        ::close(fd);
      }
      for (int s : sockets) {
        ::close(s);
      }
      throw std::runtime_error("cannot reserve a loopback port");
    }
    sockets.push_back(fd);  // held until all are picked, so the ports differ
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int s : sockets) {
    ::close(s);
  }
  return ports;
}

/// How a `nats_cluster` is started.
struct nats_cluster_options {
  /// Nodes; JetStream needs a majority of them up.
  std::size_t size = 3;
  /// The cluster's name.
  std::string name = "trellis-test";
  /// How long the cluster may take until JetStream has a meta leader that
  /// every running node knows.
  std::chrono::milliseconds ready_timeout{30'000};
};

/// A JetStream cluster of `nats_server`s on 127.0.0.1: node i is named
/// `n<i+1>`, has its own store directory, and routes to every node. Each
/// node is started, stopped, killed and restarted by its PID (`node(i)`) on
/// the same ports and store. The constructor returns once JetStream is
/// ready (`wait_ready`).
class nats_cluster {
 public:
  explicit nats_cluster(nats_cluster_options options = {}) : options_(std::move(options)) {
    if (options_.size == 0) {
      throw std::invalid_argument("nats_cluster: size 0");
    }
    auto cluster_ports = free_loopback_ports(options_.size);
    std::string routes;
    for (int p : cluster_ports) {
      routes += (routes.empty() ? "" : ", ") + std::string{"nats-route://127.0.0.1:"} + std::to_string(p);
    }
    for (std::size_t i = 0; i < options_.size; ++i) {
      nats_server_options node;
      node.server_name = "n" + std::to_string(i + 1);
      node.config_text = "cluster {\n  name: " + options_.name +
                         "\n  listen: 127.0.0.1:" + std::to_string(cluster_ports[i]) + "\n  routes: [" + routes +
                         "]\n}";
      nodes_.push_back(std::make_unique<nats_server>(std::move(node)));
    }
    wait_ready();
  }

  std::size_t size() const noexcept { return nodes_.size(); }

  /// Node `i` (0-based), named `n<i+1>`.
  nats_server& node(std::size_t i) { return *nodes_.at(i); }

  /// The index of the node named `name` (as JetStream reports leaders), if any.
  std::optional<std::size_t> index_of(const std::string& name) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (name == "n" + std::to_string(i + 1)) {
        return i;
      }
    }
    return std::nullopt;
  }

  /// Every node's client URL, comma-separated, as `--broker` takes them.
  std::string urls() const {
    std::string out;
    for (const auto& n : nodes_) {
      out += (out.empty() ? "" : ",") + n->url();
    }
    return out;
  }

  /// Waits until every running node answers its monitoring port with the
  /// same JetStream meta leader and a meta group of all `size` peers, so a
  /// replicated stream can be created. Throws `std::runtime_error` with each
  /// node's view on timeout.
  void wait_ready() {
    auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
    auto pause = std::chrono::milliseconds{5};
    for (;;) {
      std::string views;
      if (has_agreed_leader(views)) {
        return;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        throw std::runtime_error("JetStream cluster not ready within " +
                                 std::to_string(options_.ready_timeout.count()) + " ms:\n" + views);
      }
      // Pacing the polling of the monitoring ports; the leader is the condition.
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds{100});
    }
  }

  /// The name of the node leading `stream` as a running node reports it,
  /// or "" when none knows one (yet).
  std::string stream_leader(const std::string& stream) const {
    for (const auto& n : nodes_) {
      if (!n->is_running()) {
        continue;
      }
      auto report = n->jetstream_report();
      for (const auto& account : report.value("account_details", nlohmann::json::array())) {
        for (const auto& s : account.value("stream_detail", nlohmann::json::array())) {
          if (s.value("name", "") == stream) {
            auto leader = s.value("cluster", nlohmann::json::object()).value("leader", "");
            if (!leader.empty()) {
              return leader;
            }
          }
        }
      }
    }
    return "";
  }

  /// Every node's JetStream summary (see `nats_server::jetstream_summary`).
  std::string jetstream_summary() const {
    std::string out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      out += "node n" + std::to_string(i + 1) + (nodes_[i]->is_running() ? "" : " (stopped)") + ":\n" +
             (nodes_[i]->is_running() ? nodes_[i]->jetstream_summary() : std::string{});
    }
    return out;
  }

 private:
  bool has_agreed_leader(std::string& views) const {
    std::string leader;
    bool agreed = true;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i]->is_running()) {
        continue;
      }
      auto meta = nodes_[i]->jetstream_report().value("meta_cluster", nlohmann::json::object());
      auto node_leader = meta.value("leader", "");
      auto peers = meta.value("cluster_size", 0);
      views +=
          "n" + std::to_string(i + 1) + ": leader '" + node_leader + "', cluster_size " + std::to_string(peers) + "\n";
      if (node_leader.empty() || peers != static_cast<int>(nodes_.size()) ||
          (!leader.empty() && node_leader != leader)) {
        agreed = false;
      }
      leader = node_leader;
    }
    return agreed && !leader.empty();
  }

  nats_cluster_options options_;
  std::vector<std::unique_ptr<nats_server>> nodes_;
};

}  // namespace trellis::test
