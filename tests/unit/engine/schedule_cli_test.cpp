// `trellis schedule ... --db` through the command line's own entry point
// (cli_main, in process, its stdout captured): add, list, pause, resume,
// trigger, delete, and the exit codes of bad input.

#include "support/temp_dir.hpp"

#include "trellis/cli_main.hpp"
#include "trellis/store/sqlite_store.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct cli_result {
  int code = 0;
  std::string out;
};

cli_result cli(std::vector<std::string> args) {
  args.insert(args.begin(), "trellis");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int code = trellis::cli_main(static_cast<int>(argv.size()), argv.data(), trellis::task_registry{});
  std::cout.rdbuf(old);
  return {code, captured.str()};
}

std::vector<trellis::value> lines(const std::string& out) {
  std::vector<trellis::value> docs;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    auto v = trellis::value_from_json(line);
    REQUIRE(v);
    docs.push_back(*v);
  }
  return docs;
}

}  // namespace

TEST_CASE("schedule add, list, pause, resume, trigger and delete through the CLI", "[unit][schedule][cli]") {
  trellis::test::temp_dir dir;
  auto db = dir.file("app.db");
  auto flow = dir.file("flow.json");
  std::ofstream(flow) << R"({"task": "add", "args": [1, 2]})";

  auto added = cli({"schedule", "add", "poll", flow, "--every", "30s", "--overlap", "buffer_one", "--catchup", "all:5",
                    "--db", db});
  REQUIRE(added.code == 0);
  auto doc = lines(added.out).at(0).as_map();
  CHECK(doc.at("name").as_string() == "poll");
  CHECK(doc.at("every").as_string() == "30s");
  CHECK(doc.at("overlap").as_string() == "buffer_one");
  CHECK(doc.at("catchup").as_string() == "all:5");
  CHECK(doc.at("next_tick").is_integer());
  REQUIRE(cli({"schedule", "add", "nightly", flow, "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--db", db}).code ==
          0);

  auto listed = cli({"schedule", "list", "--db", db});
  REQUIRE(listed.code == 0);
  auto rows = lines(listed.out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].as_map().at("name").as_string() == "nightly");
  CHECK(rows[0].as_map().at("cron").as_string() == "30 2 * * *");
  CHECK(rows[0].as_map().at("zone").as_string() == "Europe/Berlin");
  auto table = cli({"schedule", "list", "--db", db, "-o", "table"});
  CHECK(table.out.find("NEXT TICK") != std::string::npos);
  CHECK(table.out.find("every 30s") != std::string::npos);

  auto paused = cli({"schedule", "pause", "poll", "--db", db});
  REQUIRE(paused.code == 0);
  CHECK(lines(paused.out).at(0).as_map().at("paused").as_bool());
  CHECK(lines(paused.out).at(0).as_map().at("next_tick").is_nil());
  auto resumed = cli({"schedule", "resume", "poll", "--db", db});
  REQUIRE(resumed.code == 0);
  CHECK_FALSE(lines(resumed.out).at(0).as_map().at("paused").as_bool());
  auto triggered = cli({"schedule", "trigger", "poll", "--db", db});
  REQUIRE(triggered.code == 0);
  CHECK(lines(triggered.out).at(0).as_map().at("trigger_pending").as_bool());
  auto deleted = cli({"schedule", "delete", "poll", "--db", db});
  REQUIRE(deleted.code == 0);
  CHECK(deleted.out == "{\"name\":\"poll\",\"deleted\":true}\n");
  CHECK(lines(cli({"schedule", "list", "--db", db}).out).size() == 1);
}

TEST_CASE("bad schedule input is exit 2, a missing store exit 3", "[unit][schedule][cli]") {
  trellis::test::temp_dir dir;
  auto db = dir.file("app.db");
  auto flow = dir.file("flow.json");
  std::ofstream(flow) << R"({"task": "add", "args": [1, 2]})";
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"schedule", "add", "x", flow, "--every", "0s", "--db", db},
        {"schedule", "add", "x", flow, "--every", "5x", "--db", db},
        {"schedule", "add", "x", flow, "--cron", "61 * * * *", "--db", db},
        {"schedule", "add", "x", flow, "--cron", "0 * * * *", "--tz", "Nowhere/Atlantis", "--db", db},
        {"schedule", "add", "x", flow, "--cron", "0 * * * *", "--tz", "../../etc/passwd", "--db", db},
        {"schedule", "add", "x", flow, "--every", "1s", "--cron", "* * * * *", "--db", db},
        {"schedule", "add", "x", flow, "--db", db},
        {"schedule", "add", "x", flow, "--every", "1s", "--overlap", "cancel", "--db", db},
        {"schedule", "add", "x", flow, "--every", "1s", "--catchup", "all:0", "--db", db},
        {"schedule", "add", "a:b", flow, "--every", "1s", "--db", db},
        {"schedule", "add", "x", dir.file("missing.json"), "--every", "1s", "--db", db}}) {
    INFO(bad[2] << " " << bad.back());
    CHECK(cli(bad).code == 2);
  }
  REQUIRE(cli({"schedule", "add", "x", flow, "--every", "1s", "--db", db}).code == 0);
  CHECK(cli({"schedule", "add", "x", flow, "--every", "1s", "--db", db}).code == 2);  // a name in use
  CHECK(cli({"schedule", "pause", "nope", "--db", db}).code == 2);
  CHECK(cli({"schedule", "list", "--db", dir.file("none.db")}).code == 3);
}
