// The pieces the HTTP endpoint is made of, each on its own: task events on
// the wire (strict), the event hub's ring, pages of workflows and their
// cursors over a real store, the `list` and `graph` control requests, the
// listen address rule and the queue rows read from metrics text.

#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/http/event_hub.hpp"
#include "trellis/http/http_server.hpp"
#include "trellis/lifecycle_events.hpp"
#include "trellis/operator_views.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/workflow_pages.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace trellis;
using namespace trellis::detail;

namespace {

lifecycle_event task_event(lifecycle_kind kind, std::int32_t node) {
  return lifecycle_event{kind, "wf-1", node, "add", 1, 1'700'000'000'000, value{}};
}

std::string pack(value::map m) { return pack_to_string(value(std::move(m))); }

value::map event_map() {
  return value::map{{"kind", "started"}, {"workflow", "wf"}, {"node", 3},  {"task", "add"},
                    {"attempt", 1},      {"at", 5},          {"error", value{}}};
}

}  // namespace

TEST_CASE("a task event batch round-trips every kind", "[unit][events]") {
  std::vector<lifecycle_event> events;
  for (auto kind : {lifecycle_kind::submitted, lifecycle_kind::started, lifecycle_kind::retried,
                    lifecycle_kind::succeeded, lifecycle_kind::failed, lifecycle_kind::dead_lettered,
                    lifecycle_kind::revoked}) {
    events.push_back(task_event(kind, 2));
  }
  events.front().node.reset();  // a workflow event
  events[2].error = value::map{{"type", "ValueError"}, {"message", "no"}};
  auto back = decode_lifecycle_batch(encode_lifecycle_batch(events));
  REQUIRE(back);
  REQUIRE(back->size() == events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK((*back)[i].kind == events[i].kind);
    CHECK((*back)[i].node == events[i].node);
    CHECK((*back)[i].error == events[i].error);
    CHECK((*back)[i].at == events[i].at);
  }
  CHECK(to_json(to_value(events[1])) ==
        R"({"at":1700000000000,"attempt":1,"error":null,"kind":"started","node":2,"task":"add","workflow":"wf-1"})");
}

TEST_CASE("a task event batch is decoded strictly", "[unit][events]") {
  auto batch = [](value::map event) { return pack({{"v", 1}, {"events", value::array{value(std::move(event))}}}); };
  CHECK(decode_lifecycle_batch(batch(event_map())));
  CHECK(decode_lifecycle_batch(pack({{"v", 2}, {"events", value::array{}}})).error().code() ==
        errc::unsupported_version);
  CHECK(decode_lifecycle_batch("\xc1").error().code() == errc::malformed_envelope);
  CHECK(decode_lifecycle_batch(pack({{"v", 1}})).error().code() == errc::malformed_envelope);
  CHECK(decode_lifecycle_batch(pack({{"v", 1}, {"events", value::array{}}, {"x", 1}})).error().code() ==
        errc::malformed_envelope);
  auto with = [&](const char* key, value v) {
    auto m = event_map();
    m[key] = std::move(v);
    return decode_lifecycle_batch(batch(std::move(m)));
  };
  CHECK(with("kind", "exploded").error().code() == errc::malformed_envelope);
  CHECK(with("node", -1).error().code() == errc::malformed_envelope);
  CHECK(with("node", std::int64_t{1} << 40).error().code() == errc::malformed_envelope);
  CHECK(with("attempt", "1").error().code() == errc::malformed_envelope);
  CHECK(with("at", -5).error().code() == errc::malformed_envelope);
  CHECK(with("workflow", "").error().code() == errc::malformed_envelope);
  CHECK(with("error", value::map{{"type", "x"}}).error().code() == errc::malformed_envelope);
  CHECK(with("error", value::map{{"type", "x"}, {"message", "y"}, {"extra", 1}}).error().code() ==
        errc::malformed_envelope);
  CHECK(with("extra", 1).error().code() == errc::malformed_envelope);
  CHECK(decode_lifecycle_batch(std::string(max_lifecycle_batch_bytes + 1, 'x')).error().code() ==
        errc::payload_too_large);
}

TEST_CASE("the event hub numbers events, keeps the newest and tells a slow reader what it missed",
          "[unit][events]") {
  event_hub hub{3};
  CHECK(hub.latest() == 0);
  hub.publish({task_event(lifecycle_kind::started, 1), task_event(lifecycle_kind::succeeded, 1)});
  auto first = hub.read_after(0, 10, std::chrono::milliseconds{0});
  REQUIRE(first.items.size() == 2);
  CHECK(first.items[0].seq == 1);
  CHECK(first.items[1].kind == "succeeded");
  CHECK(first.missed == 0);
  hub.publish({task_event(lifecycle_kind::started, 2), task_event(lifecycle_kind::started, 3),
               task_event(lifecycle_kind::started, 4)});
  // Events 1 and 2 fell out of a ring of 3: a reader at 1 missed one (2).
  auto behind = hub.read_after(1, 10, std::chrono::milliseconds{0});
  CHECK(behind.missed == 1);
  REQUIRE(behind.items.size() == 3);
  CHECK(behind.items.front().seq == 3);
  CHECK(hub.read_after(5, 10, std::chrono::milliseconds{0}).items.empty());
  auto capped = hub.read_after(2, 2, std::chrono::milliseconds{0});
  CHECK(capped.items.size() == 2);
}

TEST_CASE("the event hub wakes a waiting reader on publish and on close", "[unit][events]") {
  event_hub hub;
  std::thread publisher{[&] { hub.publish({task_event(lifecycle_kind::started, 1)}); }};
  auto got = hub.read_after(0, 10, std::chrono::seconds{30});
  publisher.join();
  REQUIRE(got.items.size() == 1);
  std::thread closer{[&] { hub.close(); }};
  auto last = hub.read_after(1, 10, std::chrono::seconds{30});
  closer.join();
  CHECK(last.closed);
  CHECK(last.items.empty());
}

TEST_CASE("pages of workflows continue after their cursor, newest first", "[unit][sqlite][pages]") {
  auto store = sqlite_store::open(":memory:");
  REQUIRE(store->begin());
  // Five workflows, two created in the same millisecond (ordered by id then).
  std::vector<std::pair<std::string, epoch_ms>> rows = {{"a", 100}, {"b", 200}, {"c", 200}, {"d", 300}, {"e", 400}};
  for (const auto& [id, at] : rows) {
    workflow_record w;
    w.id = id;
    w.state = id == "b" ? node_state::failure : node_state::success;
    w.canvas = value::map{{"task", "noop"}};
    w.created_at = at;
    w.finished_at = at + 1;
    REQUIRE(store->insert_workflow(w));
  }
  REQUIRE(store->commit());
  auto ids = [](const value::map& page) {
    std::vector<std::string> out;
    for (const auto& line : page.at("workflows").as_array()) {
      out.push_back(line.as_map().at("id").as_string());
    }
    return out;
  };
  auto first = workflow_page(*store, std::nullopt, 2, "");
  REQUIRE(first);
  CHECK(ids(*first) == std::vector<std::string>{"e", "d"});
  REQUIRE(first->at("next").is_string());
  auto second = workflow_page(*store, std::nullopt, 2, first->at("next").as_string());
  REQUIRE(second);
  CHECK(ids(*second) == std::vector<std::string>{"c", "b"});
  auto third = workflow_page(*store, std::nullopt, 2, second->at("next").as_string());
  REQUIRE(third);
  CHECK(ids(*third) == std::vector<std::string>{"a"});
  CHECK(third->at("next").is_nil());
  auto failed = workflow_page(*store, node_state::failure, 10, "");
  REQUIRE(failed);
  CHECK(ids(*failed) == std::vector<std::string>{"b"});
  CHECK(workflow_page(*store, std::nullopt, 2, "not-a-cursor").error().code() == errc::malformed_envelope);
  CHECK(workflow_page(*store, std::nullopt, 2, "-5.x").error().code() == errc::malformed_envelope);
  CHECK(workflow_page(*store, std::nullopt, 2, "12.").error().code() == errc::malformed_envelope);

  // Two partitions' pages merge newest first, and the merged cursor
  // continues both.
  value p0 = value(value::map{{"workflows", value::array{list_line({"x", {}, node_state::success, 500, 501}),
                                                          list_line({"y", {}, node_state::success, 150, 151})}},
                              {"next", value{}}});
  value p1 = value(value::map{{"workflows", value::array{list_line({"z", {}, node_state::success, 300, 301})}},
                              {"next", "300.z"}});
  auto merged = merge_pages({p0, p1}, 2);
  CHECK(ids(merged.as_map()) == std::vector<std::string>{"x", "z"});
  CHECK(merged.as_map().at("next") == value("300.z"));
}

TEST_CASE("list and graph control requests round-trip and are checked", "[unit][control]") {
  control_request list;
  list.op = control_op::list;
  list.limit = 50;
  list.state = "SUCCESS";
  list.cursor = "100.abc";
  auto back = decode_control_request(encode(list));
  REQUIRE(back);
  CHECK(back->op == control_op::list);
  CHECK(back->limit == 50);
  CHECK(back->state == "SUCCESS");
  CHECK(back->cursor == "100.abc");
  CHECK(std::string{subject_verb(control_op::list)} == "list");
  control_request graph;
  graph.op = control_op::graph;
  graph.workflow_id = "wf-9";
  auto g = decode_control_request(encode(graph));
  REQUIRE(g);
  CHECK(g->workflow_id == "wf-9");
  auto bad = [](value::map m) { return decode_control_request(pack(std::move(m))).error().code(); };
  CHECK(bad({{"v", 1}, {"op", "list"}}) == errc::malformed_envelope);  // no limit
  CHECK(bad({{"v", 1}, {"op", "list"}, {"limit", 0}}) == errc::malformed_envelope);
  CHECK(bad({{"v", 1}, {"op", "list"}, {"limit", max_list_page + 1}}) == errc::malformed_envelope);
  CHECK(bad({{"v", 1}, {"op", "list"}, {"limit", 5}, {"state", "DONE"}}) == errc::malformed_envelope);
  CHECK(bad({{"v", 1}, {"op", "list"}, {"limit", 5}, {"cursor", std::string(max_cursor_bytes + 1, '1')}}) ==
        errc::malformed_envelope);
  CHECK(bad({{"v", 1}, {"op", "graph"}}) == errc::malformed_envelope);  // no id
  CHECK(bad({{"v", 1}, {"op", "graph"}, {"id", "x"}, {"limit", 5}}) == errc::malformed_envelope);
}

TEST_CASE("an HTTP address off loopback needs a token", "[unit][http]") {
  auto check = [](std::string listen, std::string token = {}) { return check_http_options({listen, token}); };
  REQUIRE(check("127.0.0.1:9100"));
  CHECK(check("127.0.0.1:9100")->port == 9100);
  CHECK(check("127.0.0.1:9100")->loopback);
  CHECK(check("localhost:0"));
  CHECK(check("[::1]:8080"));
  CHECK(check("[::1]:8080")->host == "::1");
  CHECK(check("0.0.0.0:9100").error().code() == errc::invalid_config);
  CHECK(check("10.1.2.3:9100").error().message().find("token") != std::string::npos);
  CHECK(check("0.0.0.0:9100", "secret"));
  CHECK_FALSE(check("127.0.0.1"));
  CHECK_FALSE(check("127.0.0.1:65536"));
  CHECK_FALSE(check("127.0.0.1:-1"));
  CHECK_FALSE(check(":9100"));
  CHECK_FALSE(check("[::1]9100"));
}

TEST_CASE("queue rows sum counters over tasks and processes and keep the largest depth", "[unit][http]") {
  auto rows = queue_rows(
      "# HELP trellis_tasks_published_total x\n"
      "# TYPE trellis_tasks_published_total counter\n"
      "trellis_tasks_published_total{process=\"d1\",queue=\"mail\",task=\"send\"} 5\n"
      "trellis_tasks_published_total{process=\"d2\",queue=\"mail\",task=\"send\"} 7\n"
      "trellis_tasks_succeeded_total{queue=\"mail\",task=\"a\"} 3\n"
      "trellis_tasks_succeeded_total{queue=\"mail\",task=\"b\"} 4\n"
      "trellis_tasks_failed_total{queue=\"default\",task=\"b\"} 1\n"
      "trellis_queue_depth{process=\"d1\",queue=\"mail\"} 9\n"
      "trellis_queue_depth{process=\"d2\",queue=\"mail\"} 11\n"
      "trellis_dead_letters_total{queue=\"\",task=\"b\"} 2\n"
      "trellis_retries_total{subqueue=\"x\",queue=\"with \\\"quotes\\\"\",task=\"t\"} 1\n"
      "garbage line\n"
      "trellis_retries_total{queue=\"mail\",task=\"t\"} not-a-number\n");
  REQUIRE(rows.size() == 3);
  const auto& d = rows[0].as_map();
  CHECK(d.at("queue") == value("default"));
  CHECK(d.at("failed") == value(1));
  const auto& m = rows[1].as_map();
  CHECK(m.at("queue") == value("mail"));
  CHECK(m.at("published") == value(12));
  CHECK(m.at("succeeded") == value(7));
  CHECK(m.at("depth") == value(11));
  CHECK(m.at("retried") == value(0));
  CHECK(rows[2].as_map().at("queue") == value("with \"quotes\""));
}
