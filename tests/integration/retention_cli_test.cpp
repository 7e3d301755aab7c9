// Retention through `trellis-demo` (docs/operations.md "Retention"): prune
// and forget on a store file, the retention flags of an embedded engine, an
// expired idempotency key letting its effect happen again, and a store a
// running engine holds refused.

#include "support/demo_cli.hpp"
#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::command_result;
using trellis::test::count_rows;
using trellis::test::temp_dir;
using trellis::test::write_file;

using trellis::test::demo;

/// Runs `file` on `db` with `extra` flags; the finished workflow's id.
std::string run_ok(const temp_dir& dir, const std::string& file, const std::string& db,
                   std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"run", file, "--db", db};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = demo(dir, args);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(r.status == 0);
  return trellis::test::parse_outcome_line(r.last_line())["id"].get<std::string>();
}

std::int64_t lines_in(const std::string& path) {
  std::ifstream in{path};
  std::int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("prune deletes the workflows finished longer ago than --older-than, with their rows",
          "[integration][cli][retention]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [3]}]})");
  auto first = run_ok(dir, file, db);
  auto second = run_ok(dir, file, db);
  REQUIRE(count_rows(db, "SELECT count(*) FROM nodes") == 4);

  auto kept = demo(dir, {"prune", "--db", db, "--older-than", "1d"});
  CHECK(kept.status == 0);
  CHECK(json::parse(kept.last_line()) == json{{"pruned", 0}, {"older_than", "1d"}});

  auto all = demo(dir, {"prune", "--db", db, "--older-than", "0"});
  CHECK(all.status == 0);
  CHECK(json::parse(all.last_line()) == json{{"pruned", 2}, {"older_than", "0"}});
  CHECK(count_rows(db, "SELECT count(*) FROM workflows") == 0);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes") == 0);
  CHECK(demo(dir, {"status", first, "--db", db}).status == 2);

  SECTION("a duration without a unit is refused before anything runs") {
    auto bad = demo(dir, {"prune", "--db", db, "--older-than", "90"});
    CHECK(bad.status == 2);
    CHECK(bad.err.find("unit") != std::string::npos);
  }
  SECTION("a store that does not exist is not created") {
    auto missing = demo(dir, {"prune", "--db", dir.file("nothing.db")});
    CHECK(missing.status == 3);
    CHECK_FALSE(std::ifstream{dir.file("nothing.db")}.good());
  }
}

TEST_CASE("forget deletes one finished workflow and refuses an unfinished or unknown one",
          "[integration][cli][retention]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto quick = write_file(dir, "quick.json", R"({"task": "add", "args": [2, 3]})");
  auto done = run_ok(dir, quick, db);
  auto other = run_ok(dir, quick, db);

  auto r = demo(dir, {"forget", done, "--db", db});
  CHECK(r.status == 0);
  CHECK(json::parse(r.last_line()) == json{{"id", done}, {"forgotten", true}});
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + done + "'") == 0);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + other + "'") == 1);

  auto again = demo(dir, {"forget", done, "--db", db});
  CHECK(again.status == 2);
  CHECK(again.err.find("not_found") != std::string::npos);

  // A run that gives up waiting leaves its workflow unfinished in the
  // store (a countdown: no handler runs for the drain to wait for).
  auto late = write_file(dir, "late.json", R"({"task": "add", "args": [1, 2], "options": {"countdown_ms": 60000}})");
  auto waited = demo(dir, {"run", late, "--db", db, "--timeout-ms", "200"});
  REQUIRE(waited.status == 6);
  std::smatch m;
  REQUIRE(std::regex_search(waited.err, m, std::regex{"workflow ([0-9a-f]{32}) submitted"}));
  auto unfinished = m[1].str();
  auto refused = demo(dir, {"forget", unfinished, "--db", db});
  CHECK(refused.status == 2);
  CHECK(refused.err.find("not finished") != std::string::npos);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + unfinished + "'") == 1);
}

TEST_CASE("an engine's --result-expires deletes what finished longer ago when it starts",
          "[integration][cli][retention]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"task": "add", "args": [1, 2]})");
  auto old = run_ok(dir, file, db);
  // The default (1d) keeps it.
  auto kept = run_ok(dir, file, db);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + old + "'") == 1);
  // 1 ms: both earlier workflows finished longer ago than that; the
  // dispatcher's first sweep, right after its restore, deletes them.
  auto latest = run_ok(dir, file, db, {"--result-expires", "1ms"});
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id IN ('" + old + "', '" + kept + "')") == 0);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE id = '" + latest + "'") == 1);

  auto bad = demo(dir, {"run", file, "--db", db, "--result-expires", "1h30m"});
  CHECK(bad.status == 2);
  CHECK(bad.err.find("--result-expires") != std::string::npos);
}

TEST_CASE("an expired idempotency key lets its step's effect happen again", "[integration][cli][retention]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto effects = dir.file("effects.txt");
  auto file = write_file(dir, "wf.json",
                         R"({"task": "touch", "args": [")" + effects +
                             R"("], "options": {"idempotency_key": "charge-order-17"}})");
  run_ok(dir, file, db);
  CHECK(lines_in(effects) == 1);
  // The key is kept (default 7d): the step is answered from it.
  run_ok(dir, file, db);
  CHECK(lines_in(effects) == 1);
  // Expired (older than 1 ms when the next engine starts): it runs again.
  run_ok(dir, file, db, {"--idempotency-key-expires", "1ms"});
  CHECK(lines_in(effects) == 2);
}

TEST_CASE("prune and forget refuse a store a running engine holds", "[integration][cli][retention]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"task": "add", "args": [1, 2]})");
  auto id = run_ok(dir, file, db);
  trellis::test::child_process server{{TRELLIS_DEMO_BIN, "serve", "--db", db}, dir.file("serve.out"),
                                      dir.file("serve.err")};
  // The lock file names its holder once the engine has taken it (the
  // earlier `run` left its own line there: wait for the server's pid).
  const auto holder = "pid " + std::to_string(server.pid()) + ",";
  REQUIRE(trellis::test::wait_until(
      [&] { return trellis::test::read_file(db + ".lock").value_or("").find(holder) != std::string::npos; },
      std::chrono::seconds{30}, "the serving engine to take the store lock"));
  auto prune = demo(dir, {"prune", "--db", db, "--older-than", "0"});
  CHECK(prune.status == 3);
  CHECK(prune.err.find("store_locked") != std::string::npos);
  auto forget = demo(dir, {"forget", id, "--db", db});
  CHECK(forget.status == 3);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows") == 1);
}
