#pragma once

/// @file
/// Talking to a Trellis HTTP endpoint from a test: cpp-httplib's client
/// (the library the endpoint is built on, from Debian), JSON bodies read
/// with nlohmann/json, and the port a process announced in its log
/// ("serves HTTP on http://HOST:PORT/") when it was asked for port 0.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/wait_until.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace trellis::test {

/// The port in the log line of an endpoint started on port 0; nullopt
/// until the line is there.
inline std::optional<int> announced_http_port(const std::string& log) {
  std::smatch m;
  static const std::regex line{R"(serves HTTP on http://[^ ]*:([0-9]+)/)"};
  if (std::regex_search(log, m, line)) {
    return std::stoi(m[1].str());
  }
  return std::nullopt;
}

/// A client of the endpoint on 127.0.0.1:`port`, with a bound on every request.
inline httplib::Client http_client(int port) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(10, 0);
  c.set_read_timeout(30, 0);
  return c;
}

/// The JSON body of `res` (null when there is no response).
inline nlohmann::json json_of(const httplib::Result& res) {
  if (!res) {
    return nullptr;
  }
  return nlohmann::json::parse(res->body, nullptr, false);
}

/// Reads `GET /api/events` of the endpoint on `port` on a thread of its
/// own, keeping everything received, until destroyed (which closes the
/// connection and joins the thread).
class event_stream {
 public:
  explicit event_stream(int port) : client_(http_client(port)) {
    reader_ = std::thread{[this] {
      client_.Get(
          "/api/events",
          [this](const httplib::Response&) {
            connected_ = true;
            return true;
          },
          [this](const char* data, std::size_t size) {
            std::lock_guard<std::mutex> guard{mutex_};
            text_.append(data, size);
            return true;
          });
    }};
  }
  ~event_stream() {
    client_.stop();
    reader_.join();
  }
  event_stream(const event_stream&) = delete;
  event_stream& operator=(const event_stream&) = delete;

  /// Waits (one bound) until the server answered the request.
  bool wait_connected() {
    return wait_until([this] { return connected_.load(); }, max_test_wait, "the event stream to open");
  }
  /// Everything received so far.
  std::string text() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return text_;
  }
  bool contains(const std::string& needle) const { return text().find(needle) != std::string::npos; }

  /// The kinds of the events of `workflow` received so far, in order: each
  /// event is a block "id: N\nevent: KIND\ndata: JSON\n\n" (keep-alive
  /// comments are skipped).
  std::vector<std::string> kinds_of(const std::string& workflow) const {
    auto all = text();
    std::vector<std::string> kinds;
    for (std::size_t at = 0, end = 0; (end = all.find("\n\n", at)) != std::string::npos; at = end + 2) {
      auto block = all.substr(at, end - at);
      auto kind = block.find("event: ");
      auto data = block.find("data: ");
      if (kind == std::string::npos || data == std::string::npos) {
        continue;
      }
      auto event = nlohmann::json::parse(block.substr(data + 6), nullptr, false);
      if (!event.is_discarded() && event["workflow"] == workflow) {
        kinds.push_back(block.substr(kind + 7, block.find('\n', kind) - kind - 7));
      }
    }
    return kinds;
  }

 private:
  httplib::Client client_;
  std::thread reader_;
  std::atomic<bool> connected_{false};
  mutable std::mutex mutex_;
  std::string text_;
};

}  // namespace trellis::test
