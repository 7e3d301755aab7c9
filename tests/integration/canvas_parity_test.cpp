// Canvas parity with Celery: every case file in TRELLIS_PARITY_DIR holds a
// workflow, the Celery test or doc it comes from, and the outcome Celery gives
// ({"state", "result", "error_task"}). Each case runs through `trellis-demo
// run`, the way a user runs a workflow file, and must end the same way.

#include "support/parity_cases.hpp"
#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

using trellis::test::parity_cases;

/// JSON equality that also tells integers from floats: Celery's `16` and
/// `16.0` are different results, while nlohmann's `==` compares numbers by value.
bool same_json(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() != b.is_number_float()) {
      return false;
    }
    return a == b;
  }
  if (a.type() != b.type()) {
    return false;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) {
      return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!same_json(a[i], b[i])) {
        return false;
      }
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) {
      return false;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key()) || !same_json(it.value(), b.at(it.key()))) {
        return false;
      }
    }
    return true;
  }
  return a == b;
}


}  // namespace

TEST_CASE("strict JSON equality tells integers from floats", "[integration][canvas][parity]") {
  CHECK(same_json(json::parse("[1, {\"a\": 2.5}]"), json::parse("[1, {\"a\": 2.5}]")));
  CHECK_FALSE(same_json(json::parse("16"), json::parse("16.0")));
  CHECK_FALSE(same_json(json::parse("[16]"), json::parse("[16.0]")));
  CHECK_FALSE(same_json(json::parse("{\"a\": 1}"), json::parse("{\"a\": 1, \"b\": 2}")));
  CHECK_FALSE(same_json(json::parse("null"), json::parse("[]")));
}

TEST_CASE("every canvas parity case ends as it does in Celery", "[integration][canvas][parity]") {
  auto cases = parity_cases();
  REQUIRE(cases.size() >= 20);

  for (const auto& path : cases) {
    DYNAMIC_SECTION(path.filename().string()) {
      auto spec = trellis::test::read_case(path);
      REQUIRE(spec.contains("workflow"));
      REQUIRE(spec.contains("expect"));
      const auto& expect = spec["expect"];
      REQUIRE(expect.contains("state"));
      INFO("celery: " << spec.value("celery", std::string{"?"}));

      trellis::test::temp_dir dir;
      auto file = trellis::test::write_file(dir, "workflow.json", spec["workflow"].dump());
      auto r = trellis::test::run_command({TRELLIS_DEMO_BIN, "run", file, "--db", dir.file("store.db")},
                                          dir.file("demo"), trellis::test::max_test_wait);
      INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
      REQUIRE_FALSE(r.timed_out);
      auto line = r.last_line();
      REQUIRE_FALSE(line.empty());
      auto outcome = json::parse(line);

      CHECK(outcome["state"] == expect["state"]);
      CHECK(r.status == (expect["state"] == "SUCCESS" ? 0 : 1));
      INFO("expected result: " << expect.value("result", json{}).dump());
      INFO("actual result:   " << outcome["result"].dump());
      CHECK(same_json(outcome["result"], expect.value("result", json{})));
      if (expect["state"] == "FAILURE") {
        REQUIRE(expect.contains("error_task"));
        REQUIRE(outcome["error"].is_object());
        CHECK(outcome["error"]["task"] == expect["error_task"]);
      } else {
        CHECK(outcome["error"].is_null());
      }
    }
  }
}
