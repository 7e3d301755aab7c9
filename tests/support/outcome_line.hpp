#pragma once

/// @file
/// The CLI's outcome line ({"id", "state", "result", "error"}), parsed and
/// checked for exactly those keys, as `run`, `resume`, `dlq replay` and
/// `submit --wait` print it.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace trellis::test {

inline nlohmann::json parse_outcome_line(const std::string& line) {
  INFO("outcome line: " << line);
  REQUIRE_FALSE(line.empty());
  auto j = nlohmann::json::parse(line);
  REQUIRE(j.is_object());
  CHECK(j.size() == 4);
  REQUIRE(j.contains("id"));
  REQUIRE(j.contains("state"));
  REQUIRE(j.contains("result"));
  REQUIRE(j.contains("error"));
  REQUIRE(j["id"].is_string());
  CHECK_FALSE(j["id"].get<std::string>().empty());
  return j;
}

}  // namespace trellis::test
