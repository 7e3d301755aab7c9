#pragma once

/// @file
/// Talking to a Trellis HTTP endpoint from a test: cpp-httplib's client
/// (the library the endpoint is built on, from Debian), JSON bodies read
/// with nlohmann/json, and the port a process announced in its log
/// ("serves HTTP on http://HOST:PORT/") when it was asked for port 0.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <regex>
#include <string>

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

}  // namespace trellis::test
