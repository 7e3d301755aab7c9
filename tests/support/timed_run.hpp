#pragma once

/// @file
/// `trellis-demo run FILE --db DB` of a workflow, timed as a whole process,
/// for the tests whose claim is about time (time limits, rate limits).
/// Needs TRELLIS_DEMO_BIN (tests/CMakeLists.txt sets it).

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace trellis::test {

/// What one `run` printed and how long its process took.
struct timed_run {
  command_result result;
  nlohmann::json outcome;
  std::chrono::steady_clock::duration took;
};

/// Writes `workflow` to `<name>.json` in `dir` and runs `trellis-demo run`
/// on it with the store `<name>.db` and `extra` flags, to its end.
inline timed_run run_workflow(const temp_dir& dir, const std::string& name, const nlohmann::json& workflow,
                              std::vector<std::string> extra = {}) {
  auto file = write_file(dir, name + ".json", workflow.dump());
  std::vector<std::string> argv{TRELLIS_DEMO_BIN, "run", file, "--db", dir.file(name + ".db")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto started = std::chrono::steady_clock::now();
  auto r = run_command(argv, dir.file(name), max_test_wait);
  auto took = std::chrono::steady_clock::now() - started;
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  return {r, parse_outcome_line(r.last_line()), took};
}

}  // namespace trellis::test
