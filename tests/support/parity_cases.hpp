#pragma once

/// @file
/// The canvas parity case files (tests/integration/canvas_parity/*.json,
/// TRELLIS_PARITY_DIR), for the tests that run them embedded or over NATS.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#if !defined(TRELLIS_PARITY_DIR)
#error "TRELLIS_PARITY_DIR must name the parity case folder (tests/CMakeLists.txt sets it)"
#endif

namespace trellis::test {

/// The case files whose name starts with `prefix` (all of them for ""),
/// sorted, so that sections run (and report) in the same order everywhere.
inline std::vector<std::filesystem::path> parity_cases(const std::string& prefix = "") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator{TRELLIS_PARITY_DIR}) {
    auto name = entry.path().filename().string();
    if (entry.is_regular_file() && name.rfind(prefix, 0) == 0 && entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// A case file's JSON.
inline nlohmann::json read_case(const std::filesystem::path& path) {
  std::ifstream in{path};
  return nlohmann::json::parse(in);
}

}  // namespace trellis::test
