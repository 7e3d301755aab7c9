// The task contracts Celery users rely on, through `trellis-demo run` as a
// user runs a workflow file (docs/canvas.md): keyword arguments bound by
// name, retry filters by error type, and an absolute eta.

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"
#include "support/store_reader.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <trellis/clock.hpp>
#include <trellis/timestamp.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using trellis::test::command_result;
using trellis::test::temp_dir;
using trellis::test::write_file;

/// Runs `trellis-demo run FILE --db DB` on `workflow` to completion.
command_result run_workflow(const temp_dir& dir, const std::string& name, const std::string& workflow,
                            const std::string& db) {
  auto file = write_file(dir, name + ".json", workflow);
  auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "run", file, "--db", db}, dir.file(name),
                                      trellis::test::max_test_wait);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  return r;
}

json outcome_of(const command_result& r) {
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  return trellis::test::parse_outcome_line(r.last_line());
}

}  // namespace

TEST_CASE("keyword arguments bind by name after the step's input and args, and an unknown one fails the step",
          "[integration][cli][kwargs]") {
  temp_dir dir;
  SECTION("the previous result binds x, the keyword y") {
    auto r = run_workflow(dir, "partial", R"({"chain":[{"task":"add","args":[2,2]},{"task":"add","kwargs":{"y":10}}]})",
                          dir.file("partial.db"));
    CHECK(r.status == 0);
    auto out = outcome_of(r);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 14);
  }
  SECTION("every parameter by keyword") {
    auto r =
        run_workflow(dir, "keywords", R"({"task":"add","args":[],"kwargs":{"x":1,"y":2}})", dir.file("keywords.db"));
    CHECK(r.status == 0);
    auto out = outcome_of(r);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 3);
  }
  SECTION("an unknown keyword is bad_arguments naming it, never dropped") {
    auto db = dir.file("unknown.db");
    auto r = run_workflow(dir, "unknown", R"({"task":"add","args":[1,2],"kwargs":{"z":99}})", db);
    CHECK(r.status == 1);
    auto out = outcome_of(r);
    CHECK(out["state"] == "FAILURE");
    CHECK(out["result"].is_null());
    CHECK(out["error"]["task"] == "add");
    CHECK(out["error"]["type"] == "bad_arguments");
    CHECK(out["error"]["message"] == "add: unknown keyword argument 'z' (its parameters are x, y)");
    // Never retried, and kept as a dead letter of its own reason.
    auto letter = trellis::test::only_dead_letter(db);
    CHECK(letter.reason == "bad_arguments");
  }
}

TEST_CASE("retry filters retry a listed error type and fail any other at once, keeping its type",
          "[integration][cli][retry-filters]") {
  temp_dir dir;
  SECTION("a type in retry_on is retried until the step succeeds") {
    auto r = run_workflow(dir, "listed", R"({"task": "flaky", "args": [2], "kwargs": {"error_type": "connection_error"},
        "options": {"retry": {"max_retries": 3, "countdown_ms": 10, "backoff": "fixed",
                              "retry_on": ["connection_error"]}}})",
                          dir.file("listed.db"));
    CHECK(r.status == 0);
    auto out = outcome_of(r);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 3);  // the attempt that succeeded
  }
  for (const auto& [name, retry] :
       {std::pair{"not in retry_on", R"({"max_retries": 3, "countdown_ms": 10, "retry_on": ["connection_error"]})"},
        std::pair{"in dont_retry_on", R"({"max_retries": 3, "countdown_ms": 10, "dont_retry_on": ["fatal"]})"}}) {
    DYNAMIC_SECTION("a type " << name << " fails the step on its first attempt") {
      auto db = dir.file("filtered.db");
      auto r = run_workflow(dir, "filtered",
                            std::string{R"({"task": "flaky", "args": [2], "kwargs": {"error_type": "fatal"},
                                            "options": {"retry": )"} +
                                retry + "}}",
                            db);
      CHECK(r.status == 1);
      auto out = outcome_of(r);
      CHECK(out["state"] == "FAILURE");
      CHECK(out["error"]["task"] == "flaky");
      CHECK(out["error"]["type"] == "fatal");
      CHECK(out["error"]["message"] == "flaky: attempt 1 of 2 planned failures");
      auto id = out["id"].get<std::string>();
      CHECK(trellis::test::count_rows(db, "SELECT count(*) FROM attempts WHERE workflow_id = '" + id + "'") == 1);
      auto letter = trellis::test::only_dead_letter(db);
      CHECK(letter.reason == "task_failed");
      CHECK(letter.attempts == 1);
    }
  }
}

TEST_CASE("an eta holds the step until that time, one in the past runs at once, and a bad one is refused",
          "[integration][cli][eta]") {
  temp_dir dir;
  SECTION("an eta 1.5 s ahead, with an offset: the workflow cannot end before it") {
    auto eta_ms = trellis::detail::now_epoch_ms() + 1500;
    // The same instant written in UTC+01:00, as a user in Paris would.
    auto eta = trellis::format_rfc3339_ms(eta_ms + 3600 * 1000);
    eta = eta.substr(0, eta.size() - 1) + "+01:00";
    auto r = run_workflow(dir, "ahead",
                          R"({"chain": [{"task": "add", "args": [1, 2], "options": {"eta": ")" + eta +
                              R"("}}, {"task": "add", "kwargs": {"y": 4}}]})",
                          dir.file("ahead.db"));
    CHECK(trellis::detail::now_epoch_ms() >= eta_ms);
    CHECK(r.status == 0);
    auto out = outcome_of(r);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 7);
  }
  SECTION("an eta in the past runs at once") {
    auto r = run_workflow(dir, "past", R"({"task": "add", "args": [1, 2], "options": {"eta": "2001-02-03T04:05:06Z"}})",
                          dir.file("past.db"));
    CHECK(r.status == 0);
    auto out = outcome_of(r);
    CHECK(out["state"] == "SUCCESS");
    CHECK(out["result"] == 3);
  }
  for (const auto& [name, options, expected] :
       {std::tuple{"a malformed eta", R"({"eta": "next tuesday"})",
                   R"($.chain[1].options.eta: must be an RFC 3339 date-time with an offset)"},
        std::tuple{"an eta without an offset", R"({"eta": "2026-12-06T10:00:00"})",
                   R"($.chain[1].options.eta: must be an RFC 3339 date-time with an offset)"},
        std::tuple{"an eta and a countdown", R"({"eta": "2026-12-06T10:00:00Z", "countdown_ms": 5})",
                   "$.chain[1].options: eta and countdown_ms exclude each other; give one"}}) {
    DYNAMIC_SECTION(name << " is refused with exit 2 before anything runs") {
      auto db = dir.file("refused.db");
      auto r = run_workflow(
          dir, "refused",
          std::string{R"({"chain": [{"task": "add", "args": [1, 2]}, {"task": "add", "options": )"} + options + "}]}",
          db);
      CHECK(r.status == 2);
      CHECK(r.out.empty());
      CHECK(r.err.find(expected) != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(db));
    }
  }
}
