// Torture, one embedded store: `trellis-demo run` and then `resume` on the
// same store are killed with SIGKILL or stopped with SIGSTOP at moments
// picked by progress (after a random number of new marks), and while one
// runs a second `resume` on its store must be refused (exit 3); as root, the
// disk under the store may also fill up. Every round
// ends with a `resume` that finishes; then every mark is counted. A missing
// mark or a workflow not SUCCESS fails the test; doubled marks must stay
// within docs/storage.md's bound for each kill or full disk: the running handlers plus
// what finished within one commit (here: at most 200 ms of 5 ms steps on
// each handler thread). Prints its figures and seed.

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/small_disk.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"
#include "torture/torture_settings.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

namespace {

using nlohmann::json;
using trellis::test::child_process;
using trellis::test::temp_dir;

using trellis::test::between;
using trellis::test::marks_made;
using rng_t = trellis::test::torture_rng;

constexpr int chains_per_round = 150;
constexpr int concurrency = 2;
constexpr std::size_t shortest_step_ms = 5;
/// A commit's bound for the test: an fsync measured at 30 to 70 ms (docs/storage.md), with room.
constexpr std::size_t commit_interval_ms = 200;

/// Writes `path` until the file system has no space left.
void fill_up(const std::string& path) {
  std::ofstream out{path, std::ios::binary};
  const std::string chunk(1 << 20, '\0');
  while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()))) {
    out.flush();
  }
}

}  // namespace

TEST_CASE(
    "Torture: run and resume on one store killed or stopped at random moments lose no effect, refuse a second "
    "process, and run again no more than docs/storage.md allows",
    "[torture][embedded]") {
  const auto seed = trellis::test::torture_seed();
  const auto duration = trellis::test::torture_duration();
  rng_t rng{seed};
  INFO("TRELLIS_TORTURE_SEED=" << seed);

  temp_dir dir;
  // The stores live on a tmpfs of the test's own (as root), so that a fault
  // can also be the disk filling up under a running process.
  std::unique_ptr<trellis::test::small_disk> disk;
  if (trellis::test::can_mount()) {
    disk = std::make_unique<trellis::test::small_disk>(dir, "32m");
  }
  int disk_full = 0;
  int rounds = 0;
  int kills = 0;
  int stops = 0;
  int refusals = 0;
  std::size_t total_marks = 0;
  std::size_t lost = 0;
  std::size_t doubled = 0;
  const auto deadline = std::chrono::steady_clock::now() + duration;
  do {
    ++rounds;
    auto round = dir.file("round-" + std::to_string(rounds));
    std::filesystem::create_directories(round);
    auto db = disk ? disk->file("store-" + std::to_string(rounds) + ".db") : round + "/store.db";
    std::vector<std::string> marks;
    json group = json::array();
    for (int c = 0; c < chains_per_round; ++c) {
      marks.push_back(round + "/mark-" + std::to_string(c));
      json sleep{{"task", "sleep_ms"}, {"args", {between(rng, shortest_step_ms, 20)}}};
      json touch{{"task", "touch"}, {"args", {marks.back()}}, {"options", {{"immutable", true}}}};
      group.push_back({{"chain", json::array({sleep, touch})}});
    }
    auto file = trellis::test::write_file(dir, "wf.json", json{{"group", group}}.dump());

    // The first process runs the file; each later one resumes the store.
    std::vector<std::string> argv{TRELLIS_DEMO_BIN,           "run", file, "--db", db, "--concurrency",
                                  std::to_string(concurrency)};
    for (std::size_t f = 0, faults = between(rng, 1, 3); f < faults; ++f) {
      child_process p{argv, round + "/p.out", round + "/p.err"};
      // It holds the store once its lock file names it (or it ended already).
      auto holder = "pid " + std::to_string(p.pid()) + ",";
      REQUIRE(trellis::test::wait_until(
          [&] {
            return trellis::test::read_file(db + ".lock").value_or("").find(holder) != std::string::npos ||
                   p.try_wait().has_value();
          },
          trellis::test::max_test_wait, "the process to hold the store"));
      auto target = std::min(marks.size(), marks_made(marks) + between(rng, 5, 40));
      REQUIRE(trellis::test::wait_until([&] { return marks_made(marks) >= target || p.try_wait().has_value(); },
                                        trellis::test::max_test_wait, "the next fault's moment"));
      if (p.try_wait()) {
        INFO("stderr:\n" << p.stderr_text());
        REQUIRE(*p.try_wait() == 0);  // it finished before the fault: the round is done early
        break;
      }
      // A second process on the store is refused while this one holds it.
      auto second = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, round + "/second",
                                               trellis::test::max_test_wait);
      CHECK(second.out.empty());
      if (second.status != 3) {
        // Only possible once the first finished its workflow and let go of
        // the store on its way out (the last marks came just before).
        INFO("second resume: exit " << second.status << ", stderr:\n" << second.err);
        auto ended = p.wait_for(trellis::test::max_test_wait);
        REQUIRE(ended);
        CHECK(*ended == 0);
        CHECK(second.status == 0);
        break;
      }
      ++refusals;
      if (disk && between(rng, 0, 3) == 0) {
        // The disk fills up under the store: the process stops at its next
        // commit with exit 3 and the store's error (or ends first, its work
        // done). Then the space comes back.
        auto ballast = disk->file("ballast");
        fill_up(ballast);
        auto ended = p.wait_for(trellis::test::max_test_wait);
        std::filesystem::remove(ballast);
        INFO("stderr:\n" << p.stderr_text());
        REQUIRE(ended);
        CHECK((*ended == 3 || *ended == 0));
        if (*ended == 3) {
          CHECK(p.stdout_text().empty());
          CHECK_THAT(p.stderr_text(), Catch::Contains("disk is full"));
        }
        ++disk_full;
      } else if (between(rng, 0, 2) != 0) {
        p.kill(SIGKILL);
        p.wait();
        ++kills;
      } else {
        REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
        std::this_thread::sleep_for(std::chrono::milliseconds{between(rng, 50, 800)});  // the fault itself
        REQUIRE(::kill(p.pid(), SIGCONT) == 0);
        ++stops;
        p.kill(SIGKILL);  // then killed too, so the next process takes the store
        p.wait();
        ++kills;
      }
      argv = {TRELLIS_DEMO_BIN, "resume", "--db", db, "--concurrency", std::to_string(concurrency)};
    }

    // A last resume finishes whatever is left (nothing, when the run ended).
    auto last = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, round + "/last",
                                           trellis::test::max_test_wait);
    INFO("resume stderr:\n" << last.err);
    REQUIRE(last.status == 0);
    for (const auto& line : last.lines()) {
      CHECK(trellis::test::parse_outcome_line(line)["state"] == "SUCCESS");
    }
    auto status = trellis::test::run_command({TRELLIS_DEMO_BIN, "resume", "--db", db}, round + "/again",
                                             trellis::test::max_test_wait);
    CHECK(status.out.empty());  // nothing unfinished is left
    for (const auto& m : marks) {
      auto lines = trellis::test::line_count(m);
      lost += lines == 0 ? 1 : 0;
      doubled += lines > 1 ? lines - 1 : 0;
    }
    total_marks += marks.size();
    for (const auto* suffix : {"", "-wal", "-shm", ".lock"}) {
      std::filesystem::remove(db + suffix);
    }
  } while (std::chrono::steady_clock::now() < deadline);

  std::cout << "torture embedded: seed " << seed << ", " << duration.count() << " s: rounds " << rounds << ", marks "
            << total_marks << ", kills " << kills << ", stops " << stops << ", disks filled up " << disk_full
            << ", refused second processes " << refusals << ", lost " << lost << ", doubled " << doubled
            << ", crashes 0" << std::endl;
  CHECK(lost == 0);
  const auto per_kill = concurrency * (1 + commit_interval_ms / shortest_step_ms);
  // A failed commit forgets its batch as a kill does.
  CHECK(doubled <= static_cast<std::size_t>(kills + disk_full) * per_kill);
}
