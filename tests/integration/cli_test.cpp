// The command-line contract of `trellis-demo` (docs/cli.md): the outcome line,
// the exit codes, strict workflow files rejected before anything runs, and
// status / dlq list / dlq replay on a store left by an earlier run.

#include "support/demo_cli.hpp"
#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::command_result;
using trellis::test::count_rows;
using trellis::test::temp_dir;
using trellis::test::write_file;

using trellis::test::demo;

/// The outcome line: exactly the keys id, state, result and error.
json outcome_of(const command_result& r) {
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  return trellis::test::parse_outcome_line(r.last_line());
}

/// `n` no-op tasks, comma-separated.
std::string many_noops(std::size_t n) {
  std::string out;
  out.reserve(n * 17);
  for (std::size_t i = 0; i < n; ++i) {
    out += i == 0 ? R"({"task":"noop"})" : R"(,{"task":"noop"})";
  }
  return out;
}

std::vector<json> dead_letter_lines(const command_result& r) {
  std::vector<json> out;
  for (const auto& line : r.lines()) {
    out.push_back(json::parse(line));
  }
  return out;
}

}  // namespace

TEST_CASE("run prints a SUCCESS outcome line with the result and exits 0", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json",
                         R"({"chain": [{"task": "add", "args": [2, 2]}, {"task": "add", "args": [4]},
                                      {"task": "mul", "args": [10]}]})");

  auto r = demo(dir, {"run", file, "--db", db});

  CHECK(r.status == 0);
  auto j = outcome_of(r);
  CHECK(j["state"] == "SUCCESS");
  CHECK(j["result"].is_number_integer());
  CHECK(j["result"] == 80);
  CHECK(j["error"].is_null());
}

TEST_CASE("run prints a FAILURE outcome line naming the failed task and exits 1", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"chain": [
      {"task": "add", "args": [1, 1]},
      {"task": "fail", "args": ["payment declined"], "options": {"immutable": true}},
      {"task": "add", "args": [100]}]})");

  auto r = demo(dir, {"run", file, "--db", db});

  CHECK(r.status == 1);
  auto j = outcome_of(r);
  CHECK(j["state"] == "FAILURE");
  CHECK(j["result"].is_null());
  REQUIRE(j["error"].is_object());
  CHECK(j["error"]["task"] == "fail");
  REQUIRE(j["error"]["type"].is_string());
  CHECK_FALSE(j["error"]["type"].get<std::string>().empty());
  CHECK(j["error"]["message"] == "payment declined");
}

TEST_CASE("run rejects a bad workflow file with exit 2, names the place, and runs nothing", "[integration][cli]") {
  struct bad_input {
    const char* name;
    std::string text;
    /// What stderr must contain: the place in the file, or the kind of problem.
    std::vector<std::string> expected;
    /// Flags for `run` beyond the file and the store.
    std::vector<std::string> flags = {};
  };
  temp_dir dir;
  auto witness = dir.file("ran.txt");
  // The first step of every workflow below would leave a line in `witness`
  // had anything run; the problem is always after it.
  auto first = R"({"task": "touch", "args": [")" + witness + R"("]})";
  std::vector<bad_input> cases{
      {"malformed JSON", R"({"chain": [)" + first + R"(, {"task": "add", "args": [1})", {"not valid JSON"}},
      {"an unknown top-level key", R"({"chain": [)" + first + R"(], "retries": 3})", {"$:", "unknown key 'retries'"}},
      {"an unknown signature key",
       R"({"chain": [)" + first + R"(, {"task": "add", "args": [1], "countdown": 5}]})",
       {"$.chain[1]", "unknown key 'countdown'"}},
      {"args that are not an array",
       R"({"chain": [)" + first + R"(, {"task": "add", "args": 5}]})",
       {"$.chain[1].args", "must be an array"}},
      {"a bad option value",
       R"({"chain": [)" + first +
           R"(, {"task": "add", "args": [1], "options": {"retry": {"max_retries": 2, "backoff": "linear"}}}]})",
       {"$.chain[1].options.retry.backoff", "linear"}},
      {"an unknown task name",
       R"({"chain": [)" + first + R"(, {"task": "ad", "args": [1]}]})",
       {"$.chain[1]", "unknown task 'ad'"}},
      // Sizes: refused from the file, before a store exists (the message
      // quotes the start of a long name, not all of it).
      {"a task name of 1 MiB",
       R"({"chain": [)" + first + R"(, {"task": ")" + std::string(1 << 20, 'n') + R"("}]})",
       {"$.chain[1].task", "must be at most 256 bytes, got 1048576"}},
      {"a 20 KiB argument past --max-argument-bytes 16384",
       R"({"chain": [)" + first + R"(, {"task": "identity", "args": [")" + std::string(20 << 10, 'a') + R"("]}]})",
       {"$.chain[1]: the arguments of 'identity' are", "beyond max_argument_bytes (16384)"},
       {"--max-argument-bytes", "16384"}},
      {"a group of 4,000 tasks past --max-submission-bytes 65536",
       R"({"chain": [)" + first + R"(, {"group": [)" + many_noops(4'000) + R"(]}]})",
       {"beyond max_submission_bytes (65536)"},
       {"--max-submission-bytes", "65536"}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION("a file with " << c.name) {
      auto db = dir.file("store.db");
      auto file = write_file(dir, "wf.json", c.text);

      std::vector<std::string> argv{"run", file, "--db", db};
      argv.insert(argv.end(), c.flags.begin(), c.flags.end());
      auto r = demo(dir, argv);

      INFO("stderr: " << r.err);
      CHECK(r.status == 2);
      for (const auto& fragment : c.expected) {
        CHECK(r.err.find(fragment) != std::string::npos);
      }
      CHECK(r.out.empty());
      CHECK(r.err.size() < 1000);  // no error echoes the input whole
      // Nothing ran: no store was even created, and no step left its mark.
      CHECK_FALSE(std::filesystem::exists(db));
      CHECK_FALSE(std::filesystem::exists(witness));
    }
  }
}

TEST_CASE("run rejects a bad workflow file without touching an existing store", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto good = write_file(dir, "good.json", R"({"task": "add", "args": [1, 2]})");
  REQUIRE(demo(dir, {"run", good, "--db", db}).status == 0);
  auto witness = dir.file("ran.txt");
  auto bad = write_file(dir, "bad.json",
                        R"({"chain": [{"task": "touch", "args": [")" + witness + R"("]}, {"task": "nope"}]})");

  auto r = demo(dir, {"run", bad, "--db", db});

  CHECK(r.status == 2);
  CHECK(r.err.find("$.chain[1]: unknown task 'nope'") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(witness));
  // The store still holds the good workflow alone, and no step of the bad one.
  CHECK(count_rows(db, "SELECT count(*) FROM workflows") == 1);
  CHECK(count_rows(db, "SELECT count(*) FROM nodes") == 1);
}

TEST_CASE("run of a file that does not exist exits 2 naming the file", "[integration][cli]") {
  temp_dir dir;
  auto missing = dir.file("no-such-workflow.json");

  auto r = demo(dir, {"run", missing, "--db", dir.file("store.db")});

  CHECK(r.status == 2);
  CHECK(r.err.find(missing) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("store.db")));
}

TEST_CASE("every command on a database file of random bytes exits 3 saying it is not a database",
          "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("corrupt.db");
  REQUIRE(trellis::test::write_random_bytes(db, 20240611, 8192));
  auto file = write_file(dir, "wf.json", R"({"task": "add", "args": [1, 2]})");

  const std::vector<std::pair<std::string, std::vector<std::string>>> commands{
      {"run", {"run", file, "--db", db}},
      {"resume", {"resume", "--db", db}},
      {"status", {"status", "0123456789abcdef", "--db", db}},
      {"dlq list", {"dlq", "list", "--db", db}},
  };
  for (const auto& [name, args] : commands) {
    DYNAMIC_SECTION(name) {
      auto r = demo(dir, args);
      INFO("stderr: " << r.err);
      CHECK(r.status == 3);
      CHECK(r.err.find("not a database") != std::string::npos);
    }
  }
}

TEST_CASE("status of a finished workflow prints its state and result; an unknown id exits 2", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json",
                         R"({"chord": {"header": [{"task": "add", "args": [1, 1]}, {"task": "add", "args": [2, 2]}],
                                      "body": {"task": "xsum"}}})");
  auto run = demo(dir, {"run", file, "--db", db});
  REQUIRE(run.status == 0);
  auto id = outcome_of(run)["id"].get<std::string>();

  SECTION("a finished workflow") {
    auto r = demo(dir, {"status", id, "--db", db});
    CHECK(r.status == 0);
    auto j = json::parse(r.last_line());
    CHECK(j["id"] == id);
    CHECK(j["state"] == "SUCCESS");
    CHECK(j["result"] == 6);
    CHECK(j["error"].is_null());
    REQUIRE(j["nodes"].is_array());
    // Two header members and the body, each with its recorded outcome.
    CHECK(j["nodes"].size() == 3);
    for (const auto& n : j["nodes"]) {
      CHECK(n["state"] == "SUCCESS");
    }
  }
  SECTION("an id the store does not hold") {
    auto r = demo(dir, {"status", "ffffffffffffffffffffffffffffffff", "--db", db});
    CHECK(r.status == 2);
    CHECK(r.err.find("ffffffffffffffffffffffffffffffff") != std::string::npos);
  }
}

TEST_CASE("dlq list shows the dead letter of a failed workflow with its reason and task", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json",
                         R"({"group": [{"task": "add", "args": [1, 1]}, {"task": "fail", "args": ["card expired"]}]})");
  auto run = demo(dir, {"run", file, "--db", db});
  REQUIRE(run.status == 1);
  auto id = outcome_of(run)["id"].get<std::string>();

  auto r = demo(dir, {"dlq", "list", "--db", db});

  CHECK(r.status == 0);
  auto letters = dead_letter_lines(r);
  REQUIRE(letters.size() == 1);
  const auto& d = letters.front();
  CHECK(d["reason"] == "task_failed");
  CHECK(d["task"] == "fail");
  CHECK(d["workflow_id"] == id);
  CHECK(d["attempts"] == 1);
  CHECK(d["replayed"] == false);
  REQUIRE(d["error"].is_string());
  CHECK(d["error"].get<std::string>().find("card expired") != std::string::npos);
  CHECK(d["id"].is_number_integer());
}

TEST_CASE("dlq replay runs a dead-lettered step again and finishes its workflow", "[integration][cli]") {
  // A step that fails for a reason outside the task (its directory is
  // missing) and succeeds once the operator fixes that: what a replay is for.
  temp_dir dir;
  auto db = dir.file("store.db");
  auto out_dir = dir.file("reports");
  auto target = out_dir + "/daily.txt";
  auto file = write_file(dir, "wf.json",
                         R"({"chain": [{"task": "add", "args": [20, 22]},
      {"task": "touch", "args": [")" +
                             target + R"("], "options": {"immutable": true}},
      {"task": "add", "args": [10]}]})");
  auto run = demo(dir, {"run", file, "--db", db});
  REQUIRE(run.status == 1);
  auto failed = outcome_of(run);
  CHECK(failed["error"]["task"] == "touch");
  auto letters = dead_letter_lines(demo(dir, {"dlq", "list", "--db", db}));
  REQUIRE(letters.size() == 1);
  auto letter_id = std::to_string(letters.front()["id"].get<std::int64_t>());
  std::filesystem::create_directory(out_dir);

  auto r = demo(dir, {"dlq", "replay", letter_id, "--db", db});

  CHECK(r.status == 0);
  auto j = outcome_of(r);
  CHECK(j["id"] == failed["id"]);
  CHECK(j["state"] == "SUCCESS");
  CHECK(j["result"] == 11);  // touch wrote line 1; the chain went on: 1 + 10
  CHECK(j["error"].is_null());
  CHECK(trellis::test::line_count(target) == 1);
  auto status = json::parse(demo(dir, {"status", j["id"].get<std::string>(), "--db", db}).last_line());
  CHECK(status["state"] == "SUCCESS");
  CHECK(status["result"] == 11);
  auto after = dead_letter_lines(demo(dir, {"dlq", "list", "--db", db}));
  REQUIRE(after.size() == 1);
  CHECK(after.front()["replayed"] == true);
}

TEST_CASE("dlq replay of an unknown dead letter id exits 2", "[integration][cli]") {
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"task": "noop"})");
  REQUIRE(demo(dir, {"run", file, "--db", db}).status == 0);

  auto r = demo(dir, {"dlq", "replay", "4242", "--db", db});

  CHECK(r.status == 2);
  CHECK(r.err.find("4242") != std::string::npos);
}

TEST_CASE("dlq replay is a new attempt of the step: the handler sees the next attempt number", "[integration][cli]") {
  // flaky(1) fails its first attempt and succeeds from the second on. With no
  // retries the first attempt dead-letters; the replay is the step's second
  // attempt, so it succeeds and returns 2. (Attempt numbers identify attempts:
  // task message ids, the attempt history and the once-only guard use them.)
  temp_dir dir;
  auto db = dir.file("store.db");
  auto file = write_file(dir, "wf.json", R"({"task": "flaky", "args": [1]})");
  auto run = demo(dir, {"run", file, "--db", db});
  REQUIRE(run.status == 1);
  auto letters = dead_letter_lines(demo(dir, {"dlq", "list", "--db", db}));
  REQUIRE(letters.size() == 1);
  CHECK(letters.front()["attempts"] == 1);
  auto letter_id = std::to_string(letters.front()["id"].get<std::int64_t>());

  auto r = demo(dir, {"dlq", "replay", letter_id, "--db", db});

  auto j = outcome_of(r);
  CHECK(j["state"] == "SUCCESS");
  CHECK(j["result"] == 2);
  CHECK(r.status == 0);
  // The first attempt's failure is still in the history.
  auto status = json::parse(demo(dir, {"status", j["id"].get<std::string>(), "--db", db}).last_line());
  REQUIRE(status["failed_attempts"].is_array());
  REQUIRE_FALSE(status["failed_attempts"].empty());
  CHECK(status["failed_attempts"][0]["attempt"] == 1);
  CHECK(status["failed_attempts"][0]["message"].get<std::string>().find("attempt 1 of 1") != std::string::npos);
}

TEST_CASE("run of a directory exits 2 saying it is a directory, and creates no store", "[integration][cli]") {
  temp_dir dir;
  auto folder = dir.file("flows");
  std::filesystem::create_directories(folder);

  auto r = demo(dir, {"run", folder, "--db", dir.file("store.db")});

  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(folder + ": is a directory, not a workflow file"));
  CHECK_FALSE(std::filesystem::exists(dir.file("store.db")));
}

TEST_CASE("A float result that JSON cannot hold prints as the string Infinity or NaN, never as null",
          "[integration][cli]") {
  temp_dir dir;
  // 1e308 * 10 overflows to infinity; infinity * 0 is NaN.
  auto inf = write_file(dir, "inf.json", R"({"task": "mul", "args": [1e308, 10.0]})");
  auto nan = write_file(dir, "nan.json",
                        R"({"chain": [{"task": "mul", "args": [1e308, 10.0]}, {"task": "mul", "args": [0.0]}]})");

  auto r = demo(dir, {"run", inf, "--db", dir.file("inf.db")});
  CHECK(r.status == 0);
  CHECK(outcome_of(r)["result"] == "Infinity");
  r = demo(dir, {"run", nan, "--db", dir.file("nan.db")});
  CHECK(r.status == 0);
  CHECK(outcome_of(r)["result"] == "NaN");
}

TEST_CASE("the demo add and mul refuse a result outside int64 as bad_arguments instead of wrapping",
          "[integration][cli]") {
  temp_dir dir;
  for (const auto& [task, a, b] : {std::tuple{"add", INT64_MAX, std::int64_t{1}},
                                   std::tuple{"mul", std::int64_t{4611686018427387904}, std::int64_t{2}},
                                   std::tuple{"add", INT64_MIN, std::int64_t{-1}}}) {
    INFO(task << "(" << a << ", " << b << ")");
    auto db = dir.file(std::string{task} + std::to_string(b) + ".db");
    auto file = write_file(dir, "over.json", json{{"task", task}, {"args", {a, b}}}.dump());
    auto r = demo(dir, {"run", file, "--db", db});
    CHECK(r.status == 1);
    auto out = outcome_of(r);
    CHECK(out["state"] == "FAILURE");
    CHECK(out["error"]["type"] == "bad_arguments");
    CHECK(out["error"]["message"].get<std::string>().find("overflows a 64-bit integer") != std::string::npos);
  }
}
