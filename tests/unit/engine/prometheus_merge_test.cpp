// Merging the metrics of several processes (`trellis metrics --broker`): the
// process label goes on every sample, each family is declared once with the
// samples of every process under it, and bad text is refused whole.

#include "trellis/prometheus_merge.hpp"

#include "trellis/metrics.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace trellis;
using namespace trellis::detail;

TEST_CASE("the process label is put first on every sample, with or without labels", "[unit][metrics]") {
  prometheus_merge m;
  REQUIRE(
      m.add("# TYPE up gauge\nup 1\n# TYPE t_total counter\nt_total{queue=\"q\",task=\"add\"} 3\n", "process", "w1"));
  CHECK(m.text() ==
        "# TYPE up gauge\n"
        "up{process=\"w1\"} 1\n"
        "# TYPE t_total counter\n"
        "t_total{process=\"w1\",queue=\"q\",task=\"add\"} 3\n");
}

TEST_CASE("families of several processes are declared once, with every process's samples together", "[unit][metrics]") {
  prometheus_merge m;
  REQUIRE(
      m.add("# HELP a_total As.\n# TYPE a_total counter\na_total{task=\"x\"} 1\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 0.5\nh_seconds_count 2\n",
            "process", "worker-1"));
  REQUIRE(
      m.add("# TYPE b gauge\nb 7\n# HELP a_total As, again.\n# TYPE a_total counter\na_total{task=\"x\"} 4\n"
            "# TYPE h_seconds histogram\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.1\nh_seconds_count 1\n",
            "process", "dispatcher"));
  CHECK(m.text() ==
        "# HELP a_total As.\n"
        "# TYPE a_total counter\n"
        "a_total{process=\"worker-1\",task=\"x\"} 1\n"
        "a_total{process=\"dispatcher\",task=\"x\"} 4\n"
        "# TYPE h_seconds histogram\n"
        "h_seconds_bucket{process=\"worker-1\",le=\"+Inf\"} 2\n"
        "h_seconds_sum{process=\"worker-1\"} 0.5\n"
        "h_seconds_count{process=\"worker-1\"} 2\n"
        "h_seconds_bucket{process=\"dispatcher\",le=\"+Inf\"} 1\n"
        "h_seconds_sum{process=\"dispatcher\"} 0.1\n"
        "h_seconds_count{process=\"dispatcher\"} 1\n"
        "# TYPE b gauge\n"
        "b{process=\"dispatcher\"} 7\n");
}

TEST_CASE("label values are escaped, and braces and commas inside quoted values are kept", "[unit][metrics]") {
  CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  prometheus_merge m;
  REQUIRE(m.add("x{path=\"a}b,c=\\\"d\\\"\"} 1\r\n\n# a plain comment\n", "process", "odd \"name\""));
  CHECK(m.text() == "x{process=\"odd \\\"name\\\"\",path=\"a}b,c=\\\"d\\\"\"} 1\n");
}

TEST_CASE("a sample that is not in the current family forms a family of its own", "[unit][metrics]") {
  prometheus_merge m;
  REQUIRE(m.add("# TYPE a counter\na 1\nother 2\n", "process", "p"));
  CHECK(m.text() == "# TYPE a counter\na{process=\"p\"} 1\nother{process=\"p\"} 2\n");
}

TEST_CASE("bad text is refused with the line, and nothing of it is added", "[unit][metrics]") {
  struct bad_case {
    const char* what;
    const char* text;
    const char* why;
  };
  for (const auto& c : {
           bad_case{"no value", "a{q=\"x\"}\n", "no value"},
           bad_case{"no name", "{q=\"x\"} 1\n", "metric name"},
           bad_case{"open labels", "a{q=\"x\" 1\n", "not closed"},
           bad_case{"unquoted label value", "a{q=x} 1\n", "name=\"value\""},
           bad_case{"label already there", "a{process=\"x\"} 1\n", "already has the label 'process'"},
           bad_case{"type changed", "# TYPE base gauge\n", "declared counter before"},
           bad_case{"HELP without name", "# HELP \n", "names no metric"},
       }) {
    INFO(c.what);
    prometheus_merge m;
    REQUIRE(m.add("# TYPE base counter\nbase 1\n", "process", "good"));
    auto before = m.text();
    auto r = m.add(std::string{"ok_gauge 5\n"} + c.text, "process", "bad");
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::malformed_envelope);
    CHECK_THAT(r.error().message(), Catch::Contains(c.why));
    CHECK_THAT(r.error().message(), Catch::Contains("line 2"));
    CHECK(m.text() == before);
  }
}

TEST_CASE("the metrics object's own text merges, and it names the queues it recorded", "[unit][metrics]") {
  metrics stats;
  stats.add(counter::tasks_succeeded, "default", "add", 3);
  stats.observe(histogram::queue_wait, "fast", "add", 0.002);
  stats.add(counter::workflows_submitted, "", "");
  CHECK(stats.queues() == std::vector<std::string>{"default", "fast"});
  prometheus_merge m;
  REQUIRE(m.add(stats.prometheus_text(), "process", "w"));
  REQUIRE(m.add(stats.prometheus_text(), "process", "v"));
  auto text = m.text();
  CHECK_THAT(text, Catch::Contains("trellis_tasks_succeeded_total{process=\"w\",queue=\"default\",task=\"add\"} 3\n"
                                   "trellis_tasks_succeeded_total{process=\"v\",queue=\"default\",task=\"add\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("trellis_queue_wait_seconds_count{process=\"v\",queue=\"fast\",task=\"add\"} 1\n"));
  std::size_t types = 0;
  for (auto at = text.find("# TYPE trellis_queue_wait_seconds "); at != std::string::npos;
       at = text.find("# TYPE trellis_queue_wait_seconds ", at + 1)) {
    ++types;
  }
  CHECK(types == 1);
}
