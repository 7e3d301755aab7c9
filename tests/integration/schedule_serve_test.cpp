// A schedule run by a live `trellis-demo serve`, changed by `schedule ...
// --db` from other processes, across a SIGKILL and a restart of the serve.

#include "support/demo_cli.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace {

using trellis::test::command_result;
using trellis::test::temp_dir;

using trellis::test::demo;

// The submission keys of the store's workflows, from `list`.
std::vector<std::string> keys(const temp_dir& dir, const std::string& db) {
  auto r = demo(dir, {"list", "--db", db, "--limit", "10000"});
  REQUIRE(r.status == 0);
  std::vector<std::string> out;
  for (const auto& line : r.lines()) {
    auto at = line.find("\"key\":\"");
    if (at != std::string::npos) out.push_back(line.substr(at + 7, line.find('"', at + 7) - at - 7));
  }
  return out;
}

std::size_t count_with(const std::vector<std::string>& all, const std::string& part) {
  std::size_t n = 0;
  for (const auto& k : all) n += k.find(part) != std::string::npos ? 1 : 0;
  return n;
}

std::unique_ptr<trellis::test::child_process> serve(const temp_dir& dir, const std::string& db, const char* tag) {
  return std::make_unique<trellis::test::child_process>(
      std::vector<std::string>{TRELLIS_DEMO_BIN, "serve", "--db", db, "--concurrency", "1"},
      dir.file(std::string("serve-") + tag + ".out"), dir.file(std::string("serve-") + tag + ".err"));
}

}  // namespace

TEST_CASE("a live serve runs a schedule every second; schedule commands reach it; a SIGKILL doubles no tick",
          "[integration][schedule][cli]") {
  temp_dir dir;
  auto db = dir.file("app.db");
  auto flow = dir.file("flow.json");
  std::ofstream(flow) << R"({"task": "add", "args": [1, 2]})";
  REQUIRE(demo(dir, {"schedule", "add", "tick", flow, "--every", "1s", "--overlap", "allow", "--catchup", "all",
                     "--db", db})
              .status == 0);
  auto first = serve(dir, db, "1");
  REQUIRE(trellis::test::wait_until([&] { return count_with(keys(dir, db), "schedule:tick:") >= 2; },
                                    trellis::test::max_test_wait, "two ticks"));
  // A trigger written by another process while serve holds the store.
  REQUIRE(demo(dir, {"schedule", "trigger", "tick", "--db", db}).status == 0);
  REQUIRE(trellis::test::wait_until([&] { return count_with(keys(dir, db), ":trigger:") == 1; },
                                    trellis::test::max_test_wait, "the triggered run"));
  // Killed mid-flight: whatever it was doing, the next serve repeats no tick.
  first->kill(SIGKILL);
  first->wait();
  auto before = count_with(keys(dir, db), "schedule:tick:");
  auto second = serve(dir, db, "2");
  REQUIRE(trellis::test::wait_until([&] { return count_with(keys(dir, db), "schedule:tick:") >= before + 2; },
                                    trellis::test::max_test_wait, "ticks after the restart"));
  REQUIRE(demo(dir, {"schedule", "pause", "tick", "--db", db}).status == 0);
  auto listed = demo(dir, {"schedule", "list", "--db", db});
  CHECK(listed.out.find("\"paused\":true") != std::string::npos);
  second->kill(SIGTERM);
  CHECK(second->wait() == 143);

  auto all = keys(dir, db);
  std::set<std::string> distinct(all.begin(), all.end());
  CHECK(distinct.size() == all.size());
  CHECK(count_with(all, ":trigger:") == 1);
  REQUIRE(demo(dir, {"schedule", "delete", "tick", "--db", db}).status == 0);
  CHECK(demo(dir, {"schedule", "list", "--db", db}).out.empty());
}
