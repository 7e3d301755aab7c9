// An embedded store under an unlucky operator: two processes on one store,
// a disk that fills up mid-run, a read-only file system, a page corrupted in
// the middle of the file. Each ends with exit 3, a clear message on stderr,
// nothing on stdout but the JSON contract, no process left running, and no
// effect run more often than docs/storage.md says it can be.
//
// The disk tests mount a small tmpfs of their own, so they need root (as the
// README's commands and CI run); as another user they say so and pass.

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/small_disk.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

using nlohmann::json;
using trellis::test::can_mount;
using trellis::test::child_process;
using trellis::test::command_result;
using trellis::test::max_test_wait;
using trellis::test::small_disk;
using trellis::test::temp_dir;
using trellis::test::write_file;

command_result demo(const temp_dir& dir, const std::string& capture, std::vector<std::string> args) {
  std::vector<std::string> argv{TRELLIS_DEMO_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = trellis::test::run_command(std::move(argv), dir.file(capture), max_test_wait);
  INFO(capture << " stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  return r;
}

/// `n` chains of identity(a 2 KB string) -> touch(marks/mI) (immutable).
std::string marking_group(const temp_dir& dir, const std::string& marks, int n) {
  json chains = json::array();
  for (int i = 0; i < n; ++i) {
    json touch = {{"task", "touch"}, {"args", {marks + "/m" + std::to_string(i)}}, {"options", {{"immutable", true}}}};
    chains.push_back(
        {{"chain", {{{"task", "identity"}, {"args", {std::string(2000, 'x') + std::to_string(i)}}}, touch}}});
  }
  return write_file(dir, "group.json", json{{"group", chains}}.dump());
}

/// Lines per mark file in `marks`.
std::map<std::string, std::size_t> mark_lines(const std::string& marks) {
  std::map<std::string, std::size_t> out;
  for (const auto& entry : std::filesystem::directory_iterator(marks)) {
    out[entry.path().filename().string()] = trellis::test::line_count(entry.path().string());
  }
  return out;
}

}  // namespace

TEST_CASE(
    "While a run holds an embedded store, a second run, resume and dlq replay on it exit 3 naming the first's "
    "PID, and the workflow's effect happens once",
    "[integration][store]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  auto mark = dir.file("mark");
  auto file = write_file(dir, "a.json",
                         json{{"chain",
                               {{{"task", "sleep_ms"}, {"args", {1500}}},
                                {{"task", "touch"}, {"args", {mark}}, {"options", {{"immutable", true}}}}}}}
                             .dump());
  child_process first{{TRELLIS_DEMO_BIN, "run", file, "--db", db}, dir.file("first.out"), dir.file("first.err")};
  auto holder = "pid " + std::to_string(first.pid()) + ", embedded engine";
  REQUIRE(trellis::test::wait_until(
      [&] { return trellis::test::read_file(db + ".lock").value_or("").find(holder) != std::string::npos; },
      max_test_wait, "the first run to hold the store's lock"));

  const std::vector<std::vector<std::string>> others{
      {"run", file, "--db", db}, {"resume", "--db", db}, {"dlq", "replay", "1", "--db", db}};
  for (const auto& args : others) {
    auto r = demo(dir, args[0], args);
    INFO(args[0] << " stderr: " << r.err);
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("store_locked") && Catch::Contains(holder));
    CHECK(r.out.empty());
  }
  REQUIRE_FALSE(first.try_wait());  // the refusals came while it still ran

  auto status = first.wait_for(max_test_wait);
  REQUIRE(status);
  CHECK(*status == 0);
  auto out = trellis::test::parse_outcome_line(first.stdout_text().substr(0, first.stdout_text().find('\n')));
  CHECK(out["state"] == "SUCCESS");
  CHECK(trellis::test::line_count(mark) == 1);

  // Once it ended, the store is free again.
  auto again = demo(dir, "after", {"resume", "--db", db});
  CHECK(again.status == 0);
}

TEST_CASE(
    "A disk that fills up mid-run stops run with exit 3 and the store's error, re-runs nothing, and resume "
    "finishes the workflow once space is back",
    "[integration][store][disk]") {
  if (!can_mount()) {
    return;
  }
  temp_dir dir;
  small_disk disk{dir, "2m"};
  auto marks = dir.file("marks");
  std::filesystem::create_directories(marks);
  const int chains = 600;
  auto file = marking_group(dir, marks, chains);

  auto full = demo(dir, "full", {"run", file, "--db", disk.file("s.db")});
  CHECK(full.status == 3);
  CHECK_THAT(full.err, Catch::Contains("store_failed") && Catch::Contains("database or disk is full") &&
                           Catch::Contains("resume"));
  CHECK(full.out.empty());  // no outcome to print, and nothing else goes to stdout
  CHECK(full.err.find("unhandled exception") == std::string::npos);
  // Stopped, not restarted: no mark was made twice.
  auto before = mark_lines(marks);
  for (const auto& [name, lines] : before) {
    INFO(name);
    CHECK(lines == 1);
  }

  disk.remount("size=64m");
  auto resumed = demo(dir, "resume", {"resume", "--db", disk.file("s.db")});
  REQUIRE(resumed.status == 0);
  auto out = trellis::test::parse_outcome_line(resumed.last_line());
  CHECK(out["state"] == "SUCCESS");
  auto after = mark_lines(marks);
  CHECK(after.size() == static_cast<std::size_t>(chains));
  // Run again only: steps that ran before the failed commit (docs/storage.md).
  std::size_t doubled = 0;
  for (const auto& [name, lines] : after) {
    INFO(name);
    CHECK(lines <= 2);
    if (lines == 2) {
      CHECK(before.count(name) == 1);
      ++doubled;
    }
  }
  CHECK(doubled <= before.size());
}

TEST_CASE("A store on a read-only file system: run and resume of unfinished work exit 3 at once with the reason",
          "[integration][store][disk]") {
  if (!can_mount()) {
    return;
  }
  temp_dir dir;
  small_disk disk{dir, "16m"};
  auto db = disk.file("s.db");
  auto file =
      write_file(dir, "slow.json",
                 json{{"chain", {{{"task", "sleep_ms"}, {"args", {60000}}}, {{"task", "add"}, {"args", {1}}}}}}.dump());
  {
    // Unfinished work: a run killed while its first step sleeps.
    child_process run{{TRELLIS_DEMO_BIN, "run", file, "--db", db}, dir.file("slow.out"), dir.file("slow.err")};
    REQUIRE(trellis::test::wait_until(
        [&] { return trellis::test::try_count(db, "SELECT count(*) FROM workflows").value_or(0) == 1; }, max_test_wait,
        "the workflow to be committed"));
    run.kill(SIGKILL);
    run.wait();
  }
  disk.remount("ro");
  for (const auto& args : std::vector<std::vector<std::string>>{{"resume", "--db", db}, {"run", file, "--db", db}}) {
    auto r = demo(dir, args[0] + "-ro", args);
    INFO(args[0] << " stderr: " << r.err);
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("Read-only file system"));
    CHECK(r.out.empty());
    CHECK(r.err.find("unhandled exception") == std::string::npos);
  }
  // Reading needs no lock: the store can still be looked at.
  auto list = demo(dir, "dlq-ro", {"dlq", "list", "--db", db});
  CHECK(list.status == 0);
}

TEST_CASE("A store whose pages are corrupted after its header makes resume and status exit 3 saying so",
          "[integration][store]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  json group = json::array();
  for (int i = 0; i < 300; ++i) {
    group.push_back({{"task", "identity"}, {"args", {std::string(200, 'y')}}});
  }
  auto file = write_file(dir, "g.json", json{{"group", group}}.dump());
  auto first = demo(dir, "first", {"run", file, "--db", db});
  REQUIRE(first.status == 0);
  auto id = trellis::test::parse_outcome_line(first.last_line())["id"].get<std::string>();
  // The run closed the store, which folded its WAL into the file; now
  // everything after the first page (the header) is overwritten.
  auto size = std::filesystem::file_size(db);
  REQUIRE(size > 16384);
  {
    std::fstream f{db, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(4096);
    std::string garbage(size - 4096, '\xA5');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  std::filesystem::remove(db + "-wal");
  for (const auto& args : std::vector<std::vector<std::string>>{{"resume", "--db", db}, {"status", id, "--db", db}}) {
    auto r = demo(dir, args[0] + "-corrupt", args);
    INFO(args[0] << " stderr: " << r.err);
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("store_corrupt"));
    CHECK(r.out.empty());
  }
}
