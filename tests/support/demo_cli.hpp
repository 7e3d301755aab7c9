#pragma once

/// @file
/// Runs the `trellis-demo` binary (TRELLIS_DEMO_BIN, set by
/// tests/CMakeLists.txt) to completion, for the tests of its commands.

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#if !defined(TRELLIS_DEMO_BIN)
#error "TRELLIS_DEMO_BIN must name the trellis-demo binary (tests/CMakeLists.txt sets it)"
#endif

namespace trellis::test {

/// Runs `trellis-demo ARGS...` to completion (bounded by `max_test_wait`),
/// its output captured inside `dir`: each call reads its capture before the
/// next one truncates it. Fails the test when it does not end in time.
inline command_result demo(const temp_dir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv{TRELLIS_DEMO_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(std::move(argv), dir.file("demo"), max_test_wait);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  return r;
}

}  // namespace trellis::test
