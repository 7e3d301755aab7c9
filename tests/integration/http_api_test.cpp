// The HTTP endpoint of an embedded engine (docs/operations.md "HTTP"): health
// and readiness, metrics in both formats, the JSON API over a real store,
// its token and content-type rules, and task events as server-sent events,
// all over real HTTP on a loopback port.

#include "trellis/engine.hpp"

#include "support/http_client.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using namespace trellis;
using namespace std::chrono_literals;
using trellis::test::http_client;
using trellis::test::json_of;

namespace {

constexpr const char* token = "http-api-test-token";

engine_config served(const trellis::test::temp_dir& dir) {
  engine_config cfg;
  cfg.store_path = dir.file("http.db");
  cfg.concurrency = 2;
  cfg.http = http_options{"127.0.0.1:0", token};
  return cfg;
}

task_registry demo_tasks() {
  task_registry tasks;
  demo::register_demo_tasks(tasks);
  return tasks;
}

httplib::Headers bearer(const std::string& t = token) { return {{"Authorization", "Bearer " + t}}; }

}  // namespace

TEST_CASE("an embedded engine serves health, readiness and metrics over HTTP", "[integration][http]") {
  trellis::test::temp_dir dir;
  engine eng{served(dir), demo_tasks()};
  REQUIRE(eng.http_port() > 0);
  auto c = http_client(eng.http_port());
  auto health = c.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = c.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  CHECK(json_of(ready)["ready"] == true);
  CHECK(json_of(ready)["checks"]["store"]["ok"] == true);

  REQUIRE(eng.submit(canvas{signature{"add", {1, 2}}})->wait_for(30s));
  auto text = c.Get("/metrics");
  REQUIRE(text);
  CHECK(text->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(text->body.find("trellis_tasks_succeeded_total{queue=\"default\",task=\"add\"} 1") != std::string::npos);
  auto open = c.Get("/metrics", {{"Accept", "application/openmetrics-text; version=1.0.0"}});
  REQUIRE(open);
  CHECK(open->get_header_value("Content-Type").rfind("application/openmetrics-text", 0) == 0);
  CHECK(open->body.size() > 6);
  CHECK(open->body.substr(open->body.size() - 6) == "# EOF\n");
}

TEST_CASE("the JSON API lists workflows in pages, draws one as a graph and revokes with the token",
          "[integration][http]") {
  trellis::test::temp_dir dir;
  engine eng{served(dir), demo_tasks()};
  auto c = http_client(eng.http_port());
  std::set<std::string> submitted;
  for (int i = 0; i < 5; ++i) {
    auto h = eng.submit(chain(signature{"add", {i, 1}}, signature{"mul", {2}}));
    REQUIRE(h);
    REQUIRE(h->wait_for(30s));
    submitted.insert(h->id());
  }
  // Pages of two, newest first, until `next` is null: every workflow once.
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto res = c.Get(("/api/workflows?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor)).c_str());
    REQUIRE(res);
    REQUIRE(res->status == 200);
    auto page = json_of(res);
    for (const auto& w : page["workflows"]) {
      CHECK(w["state"] == "SUCCESS");
      CHECK(seen.insert(w["id"].get<std::string>()).second);
    }
    cursor = page["next"].is_null() ? "" : page["next"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(seen == submitted);
  CHECK(pages == 3);
  auto bad_limit = c.Get("/api/workflows?limit=0");
  REQUIRE(bad_limit);
  CHECK(bad_limit->status == 400);
  auto bad_state = c.Get("/api/workflows?state=DONE");
  REQUIRE(bad_state);
  CHECK(bad_state->status == 400);
  auto failed_only = c.Get("/api/workflows?state=failure");
  REQUIRE(failed_only);
  CHECK(json_of(failed_only)["workflows"].empty());

  // The graph: a chain of two tasks, states from the store.
  auto id = *submitted.begin();
  auto graph = c.Get(("/api/workflows/" + id).c_str());
  REQUIRE(graph);
  REQUIRE(graph->status == 200);
  auto doc = json_of(graph);
  CHECK(doc["state"] == "SUCCESS");
  CHECK(doc["node_count"] == 3);
  REQUIRE(doc["nodes"].size() == 3);
  CHECK(doc["nodes"][0]["kind"] == "chain");
  CHECK(doc["nodes"][0]["children"] == nlohmann::json::array({1, 2}));
  CHECK(doc["nodes"][1]["task"] == "add");
  CHECK(doc["nodes"][2]["task"] == "mul");
  CHECK(doc["nodes"][2]["state"] == "SUCCESS");
  CHECK(doc["nodes"][2]["attempt"] == 1);
  CHECK(doc["result"].is_number());
  // A step that replaced itself: its node names the canvas it became.
  auto split = eng.submit(chain(signature{"split", {3}}, signature{"xsum"}));
  REQUIRE(split);
  auto three = split->wait_for(30s);
  REQUIRE(three);
  CHECK(*three == value(3));
  auto replaced = json_of(c.Get(("/api/workflows/" + split->id()).c_str()));
  REQUIRE(replaced["nodes"].size() == 7);
  CHECK(replaced["nodes"][1]["task"] == "split");
  CHECK(replaced["nodes"][1]["replacement"] == 3);
  CHECK(replaced["nodes"][3]["kind"] == "group");
  CHECK(replaced["nodes"][3]["children"] == nlohmann::json::array({4, 5, 6}));
  CHECK(replaced["nodes"][4]["task"] == "identity");
  CHECK(replaced["nodes"][4]["state"] == "SUCCESS");
  CHECK(replaced["nodes"][2]["replacement"].is_null());
  submitted.insert(split->id());
  // Callbacks: the node lists them, their roots say which kind they are.
  auto linked = eng.submit(canvas(signature{"add", {1, 2}}).link(signature{"identity"}).link_error(signature{"noop"}));
  REQUIRE(linked);
  REQUIRE(linked->wait_for(30s));
  auto with_callbacks = json_of(c.Get(("/api/workflows/" + linked->id()).c_str()));
  REQUIRE(with_callbacks["nodes"].size() == 3);
  CHECK(with_callbacks["nodes"][0]["links"] == nlohmann::json::array({1}));
  CHECK(with_callbacks["nodes"][0]["link_errors"] == nlohmann::json::array({2}));
  CHECK(with_callbacks["nodes"][0]["callback"].is_null());
  CHECK(with_callbacks["nodes"][1]["callback"] == "link");
  CHECK(with_callbacks["nodes"][1]["parent"] == 0);
  CHECK(with_callbacks["nodes"][1]["state"] == "SUCCESS");
  CHECK(with_callbacks["nodes"][2]["callback"] == "link_error");
  CHECK(with_callbacks["nodes"][2]["state"] == "REVOKED");
  CHECK(with_callbacks["nodes"][2]["error"]["type"] == "not_run");
  submitted.insert(linked->id());
  auto missing = c.Get("/api/workflows/0123456789abcdef");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json_of(missing)["error"]["type"] == "not_found");

  // Revoke: the token is required, JSON is required, a finished one is a conflict.
  auto running = eng.submit(chain(signature{"sleep_ms", {60'000}}, signature{"add", {1}}));
  REQUIRE(running);
  auto path = "/api/workflows/" + running->id() + "/revoke";
  auto no_token = c.Post(path.c_str(), "{}", "application/json");
  REQUIRE(no_token);
  CHECK(no_token->status == 401);
  auto wrong_token = c.Post(path.c_str(), bearer("nope"), "{}", "application/json");
  REQUIRE(wrong_token);
  CHECK(wrong_token->status == 401);
  auto not_json = c.Post(path.c_str(), bearer(), "node=1", "application/x-www-form-urlencoded");
  REQUIRE(not_json);
  CHECK(not_json->status == 415);
  auto revoked = c.Post(path.c_str(), bearer(), R"({"terminate": true})", "application/json");
  REQUIRE(revoked);
  CHECK(revoked->status == 200);
  CHECK(json_of(revoked)["state"] == "REVOKED");
  CHECK(running->wait_for(30s).error().code() == errc::revoked);
  auto again = c.Post(path.c_str(), bearer(), "{}", "application/json");
  REQUIRE(again);
  CHECK(again->status == 409);
}

TEST_CASE("the JSON API submits, lists dead letters and replays one", "[integration][http]") {
  trellis::test::temp_dir dir;
  engine eng{served(dir), demo_tasks()};
  auto c = http_client(eng.http_port());
  auto post = c.Post("/api/workflows?key=order-7", bearer(), R"({"task": "fail", "args": ["card declined"]})",
                     "application/json");
  REQUIRE(post);
  REQUIRE(post->status == 200);
  auto id = json_of(post)["id"].get<std::string>();
  auto same = c.Post("/api/workflows?key=order-7", bearer(), R"({"task": "fail", "args": ["card declined"]})",
                     "application/json");
  REQUIRE(same);
  CHECK(json_of(same)["id"] == id);  // one submission per key
  auto unknown = c.Post("/api/workflows", bearer(), R"({"task": "no_such_task"})", "application/json");
  REQUIRE(unknown);
  CHECK(unknown->status == 400);
  CHECK(json_of(unknown)["error"]["type"] == "unknown_task");
  auto not_a_canvas = c.Post("/api/workflows", bearer(), R"({"chain": 5})", "application/json");
  REQUIRE(not_a_canvas);
  CHECK(not_a_canvas->status == 400);
  REQUIRE(eng.find(id));
  CHECK(eng.find(id)->wait_for(30s).error().code() == errc::workflow_failed);

  auto letters = json_of(c.Get("/api/dead-letters"));
  REQUIRE(letters.size() == 1);
  CHECK(letters[0]["workflow_id"] == id);
  CHECK(letters[0]["partition"] == 0);
  auto letter = letters[0]["id"].get<std::int64_t>();
  auto replay_path = "/api/dead-letters/" + std::to_string(letter) + "/replay";
  auto refused = c.Post(replay_path.c_str(), "{}", "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  auto replayed = c.Post(replay_path.c_str(), bearer(), R"({"partition": 0})", "application/json");
  REQUIRE(replayed);
  REQUIRE(replayed->status == 200);
  CHECK(json_of(replayed)["id"] == id);
  // The node fails again: a second letter, the first marked replayed.
  REQUIRE(trellis::test::wait_until([&] { return json_of(c.Get("/api/dead-letters")).size() == 2; }, 30s,
                                    "the replayed node's second dead letter"));
  auto twice = json_of(c.Get("/api/dead-letters"));
  CHECK(twice[1]["replayed"] == true);
  auto workers = json_of(c.Get("/api/workers"));
  REQUIRE(workers.size() == 1);
  CHECK(workers[0]["role"] == "embedded");
  auto queues = json_of(c.Get("/api/queues"));
  REQUIRE_FALSE(queues.empty());
  CHECK(queues[0]["queue"] == "default");
}

TEST_CASE("task events stream as server-sent events in the order they happened", "[integration][http]") {
  trellis::test::temp_dir dir;
  engine eng{served(dir), demo_tasks()};
  trellis::test::event_stream events{eng.http_port()};
  REQUIRE(events.wait_connected());
  auto h = eng.submit(chain(signature{"add", {1, 2}}, signature{"fail", {"boom"}}.immutable()));
  REQUIRE(h);
  auto id = h->id();
  // The workflow's own failure is the last thing announced.
  REQUIRE(trellis::test::wait_until(
      [&] { return events.contains(R"("kind":"failed","node":null,"task":"","workflow":")" + id + "\""); }, 30s,
      "the workflow's failed event"));
  auto kinds = events.kinds_of(id);
  CHECK(kinds == std::vector<std::string>{"submitted", "started", "succeeded", "started", "dead_lettered", "failed",
                                          "failed"});
  CHECK(events.contains("id: 1\n"));
}

TEST_CASE("an engine refuses an HTTP address off loopback without a token", "[integration][http]") {
  trellis::test::temp_dir dir;
  auto cfg = served(dir);
  cfg.http = http_options{"0.0.0.0:0", ""};
  try {
    engine eng{cfg, demo_tasks()};
    FAIL("the engine started");
  } catch (const setup_error& e) {
    CHECK(e.code() == errc::invalid_config);
    CHECK(std::string{e.what()}.find("token") != std::string::npos);
  }
}
