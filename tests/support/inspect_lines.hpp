#pragma once

/// @file
/// `trellis inspect` as tests read it: every line it printed (one JSON
/// object per live process, then one per task nobody serves), and the
/// lines of one role.

#include "support/cluster_processes.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace trellis::test {

/// Every answer `inspect` printed within `timeout_ms`; the command must
/// succeed.
inline std::vector<nlohmann::json> inspect(cluster_processes& c, const std::string& timeout_ms = "1000") {
  auto r = c.client({"inspect", "--timeout-ms", timeout_ms});
  INFO("inspect stderr:\n" << r.err);
  REQUIRE(r.status == 0);
  std::vector<nlohmann::json> answers;
  for (const auto& line : r.lines()) {
    answers.push_back(nlohmann::json::parse(line));
  }
  return answers;
}

/// The answers whose `role` is `role` ("worker", "dispatcher", "unserved").
inline std::vector<nlohmann::json> of_role(const std::vector<nlohmann::json>& answers, const std::string& role) {
  std::vector<nlohmann::json> out;
  for (const auto& a : answers) {
    if (a.value("role", "") == role) {
      out.push_back(a);
    }
  }
  return out;
}

}  // namespace trellis::test
