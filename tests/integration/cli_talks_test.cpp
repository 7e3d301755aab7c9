// A CLI that talks (docs/cli.md "Waiting", "Listing workflows"): the
// workflow id on stderr before any wait while stdout keeps its JSON lines,
// --timeout-ms on every wait (exit 6, the workflow goes on), `run --key`,
// `list`, the progress line on a terminal, and over a real cluster
// `submit --wait`.

#include "support/demo_cli.hpp"
#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::cluster_processes;
using trellis::test::command_result;
using trellis::test::count_rows;
using trellis::test::temp_dir;
using trellis::test::write_file;

using trellis::test::demo;

/// The id of the first `trellis: workflow ID submitted` line of `err`, or "".
std::string announced_id(const std::string& err, const std::string& what = "submitted") {
  std::smatch m;
  std::regex line{"workflow ([0-9a-f]{32}) " + what};
  return std::regex_search(err, m, line) ? m[1].str() : std::string{};
}

/// A chain of two additions: 2 + 2 + 3 = 7.
std::string small_chain(const temp_dir& dir) {
  return write_file(dir, "chain.json", R"({"chain": [{"task": "add", "args": [2, 2]}, {"task": "add", "args": [3]}]})");
}

/// A task that is not published before a minute has passed: a wait on it
/// runs out, and the drain after it has no running handler to wait for.
std::string late_task(const temp_dir& dir) {
  return write_file(dir, "late.json", R"({"task": "add", "args": [1, 2], "options": {"countdown_ms": 60000}})");
}

}  // namespace

TEST_CASE("run: the workflow id goes to stderr before the wait, and stdout holds only the outcome line",
          "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto r = demo(dir, {"run", small_chain(dir), "--db", dir.file("s.db")});

  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status == 0);
  REQUIRE(r.lines().size() == 1);
  auto outcome = trellis::test::parse_outcome_line(r.last_line());
  CHECK(outcome["result"] == 7);
  CHECK(announced_id(r.err) == outcome["id"].get<std::string>());
}

TEST_CASE("run --timeout-ms: the wait ends with exit 6 naming the workflow, which stays in the store for resume",
          "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  auto r = demo(dir, {"run", late_task(dir), "--db", db, "--timeout-ms", "300"});

  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status == 6);
  CHECK(r.out.empty());
  auto id = announced_id(r.err);
  REQUIRE_FALSE(id.empty());
  CHECK(r.err.find("timeout: workflow " + id + " not finished after 300 ms (--timeout-ms)") !=
        std::string::npos);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE state NOT IN (3, 4, 6)") == 1);

  // resume waits under the same flag: the workflow is announced and still
  // not due, so the wait runs out again.
  auto again = demo(dir, {"resume", "--db", db, "--timeout-ms", "200"});
  CHECK(again.status == 6);
  CHECK(announced_id(again.err, "resumed") == id);
  CHECK(again.out.empty());
}

TEST_CASE("A --timeout-ms out of range is refused before anything runs", "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  for (const auto* bad : {"0", "-5", "2147483648", "soon"}) {
    auto r = demo(dir, {"run", small_chain(dir), "--db", db, "--timeout-ms", bad});
    CAPTURE(bad);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
  }
  CHECK_FALSE(std::filesystem::exists(db));
  // Without --wait, submit does not wait: the flag is refused, before a connection.
  auto r = demo(dir, {"submit", small_chain(dir), "--broker", "nats://127.0.0.1:1", "--timeout-ms", "100"});
  CHECK(r.status == 2);
  CHECK(r.err.find("--timeout-ms bounds the wait: it needs --wait") != std::string::npos);
}

TEST_CASE("run --key twice: one workflow, the second run gets the first one's outcome",
          "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  auto file = small_chain(dir);
  auto first = demo(dir, {"run", file, "--db", db, "--key", "order-17"});
  auto second = demo(dir, {"run", file, "--db", db, "--key", "order-17"});
  auto other = demo(dir, {"run", file, "--db", db, "--key", "order-18"});

  CHECK(first.status == 0);
  CHECK(second.status == 0);
  auto a = trellis::test::parse_outcome_line(first.last_line());
  auto b = trellis::test::parse_outcome_line(second.last_line());
  auto c = trellis::test::parse_outcome_line(other.last_line());
  CHECK(a["id"] == b["id"]);
  CHECK(b["result"] == 7);
  CHECK(a["id"] != c["id"]);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows") == 2);
  CHECK(count_rows(db, "SELECT count(*) FROM workflows WHERE submit_key = 'order-17'") == 1);
}

TEST_CASE("submit --wait: the id on stderr at once, the outcome alone on stdout, and --timeout-ms exit 6",
          "[integration][nats][cli_talks]") {
  cluster_processes c{"clitalks", {}};
  temp_dir dir;
  c.wait_running(c.start_dispatcher(c.db()));

  // No worker yet: the wait runs out, and the workflow stays queued.
  auto late = c.submit(small_chain(dir), {"--wait", "--timeout-ms", "500"});
  INFO("stdout:\n" << late.out << "\nstderr:\n" << late.err << '\n' << c.logs());
  CHECK(late.status == 6);
  CHECK(late.out.empty());
  auto id = announced_id(late.err);
  REQUIRE_FALSE(id.empty());
  CHECK(late.err.find("timeout: workflow " + id + " not finished after 500 ms") != std::string::npos);
  CHECK(late.err.find("it goes on in the cluster") != std::string::npos);

  // A worker comes; the queued workflow finishes, and a new submit --wait
  // prints only its outcome line on stdout.
  c.wait_running(c.start_worker());
  auto done = c.submit(small_chain(dir), {"--wait", "--timeout-ms", "60000"});
  CHECK(done.status == 0);
  REQUIRE(done.lines().size() == 1);
  auto outcome = trellis::test::parse_outcome_line(done.last_line());
  CHECK(outcome["result"] == 7);
  CHECK(announced_id(done.err) == outcome["id"].get<std::string>());
  auto status = c.client({"status", id});
  CHECK(status.status == 0);
  CHECK(json::parse(status.last_line())["id"] == id);
  REQUIRE(trellis::test::wait_until(
      [&] {
        return json::parse(c.client({"status", id}).last_line())["state"] == "SUCCESS";
      },
      trellis::test::max_test_wait, "the queued workflow to finish once a worker came"));
  CHECK(c.stop_all());
}

TEST_CASE("list: the store's workflows newest first, filtered by state, bounded, and as a table",
          "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  auto ok = small_chain(dir);
  auto failing = write_file(dir, "fail.json", R"({"task": "fail", "args": ["no"]})");
  std::vector<std::string> ids;
  for (const auto& file : {ok, failing, ok}) {
    auto r = demo(dir, {"run", file, "--db", db});
    ids.push_back(trellis::test::parse_outcome_line(r.last_line())["id"].get<std::string>());
  }

  auto all = demo(dir, {"list", "--db", db});
  CHECK(all.status == 0);
  REQUIRE(all.lines().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    auto line = json::parse(all.lines()[i]);
    CHECK(line["id"] == ids[2 - i]);  // newest first
    CHECK(line["created_at"].is_number_integer());
    CHECK(line["finished_at"].is_number_integer());
    CHECK(line["key"].is_null());
  }
  CHECK(json::parse(all.lines()[1])["state"] == "FAILURE");

  auto failed = demo(dir, {"list", "--db", db, "--state", "failure"});
  REQUIRE(failed.lines().size() == 1);
  CHECK(json::parse(failed.last_line())["id"] == ids[1]);

  auto newest = demo(dir, {"list", "--db", db, "--limit", "1"});
  REQUIRE(newest.lines().size() == 1);
  CHECK(json::parse(newest.last_line())["id"] == ids[2]);

  auto table = demo(dir, {"list", "--db", db, "-o", "table"});
  CHECK(table.status == 0);
  REQUIRE(table.lines().size() == 4);
  CHECK(table.lines()[0].rfind("ID", 0) == 0);
  CHECK(table.lines()[2].find(ids[1]) != std::string::npos);
  CHECK(table.lines()[2].find("FAILURE") != std::string::npos);

  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--state", "DONE"}, {"--limit", "0"}, {"--limit", "10001"}, {"-o", "yaml"}}) {
    std::vector<std::string> args{"list", "--db", db};
    args.insert(args.end(), bad.begin(), bad.end());
    auto r = demo(dir, args);
    CAPTURE(bad);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
  }
  auto missing = demo(dir, {"list", "--db", dir.file("missing.db")});
  CHECK(missing.status == 3);
}

TEST_CASE("list reads a store beside the engine that owns it", "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  trellis::test::child_process owner{
      {TRELLIS_DEMO_BIN, "run", late_task(dir), "--db", db}, dir.file("owner.out"), dir.file("owner.err")};
  std::string id;
  REQUIRE(trellis::test::wait_until(
      [&] {
        id = announced_id(owner.stderr_text());
        return !id.empty();
      },
      trellis::test::max_test_wait, "the running engine to announce its workflow"));

  auto r = demo(dir, {"list", "--db", db});
  CHECK(r.status == 0);
  REQUIRE(r.lines().size() == 1);
  auto line = json::parse(r.last_line());
  CHECK(line["id"] == id);
  CHECK(line["finished_at"].is_null());
  CHECK(line["state"] != "SUCCESS");

  // A second engine on the store is refused, naming the owner.
  auto second = demo(dir, {"run", small_chain(dir), "--db", db});
  CHECK(second.status == 3);
  CHECK(second.err.find("store_locked") != std::string::npos);

  owner.kill(SIGTERM);
  CHECK(owner.wait() == 143);
}

TEST_CASE("on a terminal, run draws a progress line on stderr and erases it before the outcome line",
          "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  // Two steps of 600 ms: several redraws (one every 200 ms).
  auto file = write_file(dir, "slow.json", R"({"chain": [{"task": "sleep_ms", "args": [600]},
      {"task": "sleep_ms", "args": [600], "options": {"immutable": true}}]})");
  // script(1) gives the command a pseudo-terminal for stdin, stdout and
  // stderr, and copies what it wrote to its own stdout.
  auto command = std::string{TRELLIS_DEMO_BIN} + " run " + file + " --db " + db;
  auto r = trellis::test::run_command({"/usr/bin/script", "-qec", command, "/dev/null"}, dir.file("tty"),
                                      trellis::test::max_test_wait);
  INFO(r.out << '\n' << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.status == 0);
  CHECK(r.out.find("\rtrellis: 0/2 nodes done, ") != std::string::npos);
  CHECK(r.out.find("\rtrellis: 1/2 nodes done, ") != std::string::npos);
  // Erased, then the outcome line at the line's start.
  auto erased = r.out.find("\r\x1b[K{\"id\":");
  REQUIRE(erased != std::string::npos);
  auto outcome = r.out.substr(erased + 4);
  outcome = outcome.substr(0, outcome.find_first_of("\r\n"));
  CHECK(trellis::test::parse_outcome_line(outcome)["result"] == 600);

  // Not a terminal: no progress line at all.
  auto plain = demo(dir, {"run", file, "--db", db});
  CHECK(plain.err.find("nodes done") == std::string::npos);
  CHECK(plain.err.find('\r') == std::string::npos);
}

TEST_CASE("submit --wait warns when no live worker serves a queue the workflow needs",
          "[integration][nats][cli_talks]") {
  cluster_processes c{"clitalkswarn", {}};
  temp_dir dir;
  c.wait_running(c.start_dispatcher(c.db()));
  // The only worker serves another queue; `add` goes to "default".
  c.wait_running(c.start_worker({"--queues", "other"}));

  auto r = c.submit(small_chain(dir), {"--wait", "--timeout-ms", "8000"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << '\n' << c.logs());
  CHECK(r.status == 6);
  CHECK(r.out.empty());
  CHECK(r.err.find("WARN trellis-submit: no live worker serves task add in queue default; the workflow waits for one") !=
        std::string::npos);

  // A worker of the default queue comes (naming its queue, as every worker
  // of a namespace must once one does): no warning, the outcome alone on stdout.
  c.wait_running(c.start_worker({"--queues", "default"}));
  auto served = c.submit(small_chain(dir), {"--wait", "--timeout-ms", "60000"});
  CHECK(served.status == 0);
  CHECK(served.err.find("warning") == std::string::npos);
  CHECK(served.lines().size() == 1);
  CHECK(c.stop_all());
}

TEST_CASE("status and dlq list: -o table for a person, JSON by default", "[integration][cli][cli_talks]") {
  temp_dir dir;
  auto db = dir.file("s.db");
  auto run = demo(dir, {"run", write_file(dir, "fail.json", R"({"task": "fail", "args": ["boom"]})"), "--db", db});
  auto id = trellis::test::parse_outcome_line(run.last_line())["id"].get<std::string>();

  auto status = demo(dir, {"status", id, "--db", db, "-o", "table"});
  CHECK(status.status == 0);
  REQUIRE(status.lines().size() == 4);
  CHECK(status.lines()[0] == "workflow " + id + "  FAILURE");
  CHECK(status.lines()[1].find("boom") != std::string::npos);
  CHECK(status.lines()[2].rfind("NODE  TASK", 0) == 0);
  CHECK(status.lines()[3].find("fail") != std::string::npos);
  CHECK(json::parse(demo(dir, {"status", id, "--db", db, "-o", "json"}).last_line())["id"] == id);

  auto letters = demo(dir, {"dlq", "list", "--db", db, "-o", "table"});
  CHECK(letters.status == 0);
  REQUIRE(letters.lines().size() == 2);
  CHECK(letters.lines()[0].rfind("ID  WORKFLOW", 0) == 0);
  CHECK(letters.lines()[1].find(id) != std::string::npos);
  CHECK(letters.lines()[1].find("task_failed") != std::string::npos);
  auto plain = demo(dir, {"dlq", "list", "--db", db});
  REQUIRE(plain.lines().size() == 1);
  CHECK(json::parse(plain.last_line())["workflow_id"] == id);

  CHECK(demo(dir, {"status", id, "--db", db, "-o", "yaml"}).status == 2);
}
