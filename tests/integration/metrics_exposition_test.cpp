// The metrics exposition as a scraper reads it: every family with # HELP and
// # TYPE, every registered task's series present from the start at zero,
// and text that the Prometheus client's own parsers accept, as Prometheus
// text and as OpenMetrics (Debian's python3-prometheus-client), embedded and
// merged over a cluster by `trellis metrics --broker`.

#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/engine_run.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <demo_tasks.hpp>

#include "trellis/engine.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#if !defined(TRELLIS_PARSE_METRICS_SCRIPT)
#error "TRELLIS_PARSE_METRICS_SCRIPT must name tests/support/parse_metrics.py (tests/CMakeLists.txt sets it)"
#endif

using trellis::test::max_test_wait;
using trellis::test::temp_dir;

namespace {

/// What a text declares and holds: families with HELP, with TYPE, and the
/// sample lines.
struct exposition {
  std::set<std::string> help;
  std::map<std::string, std::string> type;
  std::vector<std::string> samples;
};

exposition read(const std::string& text) {
  exposition e;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0) {
      e.help.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.rfind("# TYPE ", 0) == 0) {
      auto name_end = line.find(' ', 7);
      e.type[line.substr(7, name_end - 7)] = line.substr(name_end + 1);
    } else if (!line.empty() && line[0] != '#') {
      e.samples.push_back(line);
    }
  }
  return e;
}

/// The family a sample line belongs to, given the declared families.
std::string family_of(const std::string& sample, const exposition& e) {
  auto name = sample.substr(0, sample.find_first_of("{ "));
  for (const char* suffix : {"", "_bucket", "_sum", "_count", "_total"}) {
    std::string s{suffix};
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      if (e.type.count(base) != 0) {
        return base;
      }
    }
  }
  return name;
}

/// Runs the Prometheus client's parser (`format`: prometheus or
/// openmetrics) on `text`; returns its "families N samples M" line.
std::string parse_with_client(temp_dir& dir, const std::string& format, const std::string& text) {
  auto file = dir.file("metrics-" + format + ".txt");
  std::ofstream{file} << text;
  auto r = trellis::test::run_command({"/usr/bin/python3", TRELLIS_PARSE_METRICS_SCRIPT, format, file},
                                      dir.file("parse-" + format), max_test_wait);
  INFO(format << " parser stderr:\n" << r.err << "\ntext:\n" << text);
  REQUIRE_FALSE(r.timed_out);
  REQUIRE(r.status == 0);
  return r.out;
}

void check_declared(const exposition& e) {
  for (const auto& sample : e.samples) {
    auto family = family_of(sample, e);
    INFO("sample: " << sample);
    CHECK(e.type.count(family) == 1);
    CHECK(e.help.count(family) == 1);
  }
  for (const auto& [family, type] : e.type) {
    INFO("family " << family);
    CHECK(e.help.count(family) == 1);
  }
}

}  // namespace

TEST_CASE(
    "embedded metrics declare every family, show every registered task at zero from the start, and parse as "
    "Prometheus text and OpenMetrics",
    "[integration][engine][metrics]") {
  temp_dir dir;
  trellis::task_registry tasks;
  trellis::demo::register_demo_tasks(tasks);
  trellis::engine eng{trellis::test::engine_config_for(dir.file("m.db")), tasks};

  // Before anything ran: the series an alert needs are there, at zero.
  auto fresh = read(eng.metrics_text());
  check_declared(fresh);
  for (const char* series : {"trellis_dead_letters_total{queue=\"\",task=\"fail\"} 0",
                             "trellis_tasks_failed_total{queue=\"default\",task=\"add\"} 0",
                             "trellis_retries_total{queue=\"default\",task=\"flaky\"} 0",
                             "trellis_tasks_succeeded_total{queue=\"default\",task=\"xsum\"} 0",
                             "trellis_handler_duration_seconds_count{queue=\"default\",task=\"add\"} 0",
                             "trellis_queue_wait_seconds_count{queue=\"default\",task=\"add\"} 0",
                             "trellis_publish_latency_seconds_count{queue=\"default\",task=\"\"} 0",
                             "trellis_abandoned_handlers_running 0"}) {
    INFO(series);
    CHECK(std::count(fresh.samples.begin(), fresh.samples.end(), series) == 1);
  }
  // Families nothing recorded yet are declared too.
  CHECK(fresh.type.at("trellis_graph_rebuilds_total") == "counter");
  CHECK(fresh.type.at("trellis_rate_limit_wait_seconds") == "histogram");

  // After work, both formats parse with the Prometheus client's parsers.
  CHECK(trellis::test::run(eng, trellis::chain(trellis::signature("add", {2, 2}), trellis::signature("add", {3}))) ==
        trellis::value(7));
  auto text = eng.metrics_text();
  auto after = read(text);
  check_declared(after);
  CHECK(std::count(after.samples.begin(), after.samples.end(),
                   "trellis_tasks_succeeded_total{queue=\"default\",task=\"add\"} 2") == 1);
  auto families = std::to_string(after.type.size());
  CHECK(parse_with_client(dir, "prometheus", text).rfind("families " + families + " ", 0) == 0);

  auto open = eng.metrics_text(trellis::metrics_format::openmetrics);
  CHECK(open.size() >= 6);
  CHECK(open.substr(open.size() - 6) == "# EOF\n");
  CHECK(open.find("# TYPE trellis_tasks_succeeded counter\n") != std::string::npos);
  CHECK(open.find("trellis_tasks_succeeded_total{queue=\"default\",task=\"add\"} 2\n") != std::string::npos);
  CHECK(parse_with_client(dir, "openmetrics", open).rfind("families " + families + " ", 0) == 0);
}

TEST_CASE("trellis metrics --broker merges a worker and a dispatcher into text both parsers accept",
          "[integration][nats][metrics]") {
  temp_dir dir;
  trellis::test::cluster_processes c{"metricsfmt", {}};
  c.wait_running(c.start_dispatcher(c.db()));
  c.wait_running(c.start_worker({"--concurrency", "2"}));

  // The worker's series of its registered tasks are there before any task.
  std::string prometheus;
  REQUIRE(trellis::test::wait_until(
      [&] {
        auto r = c.client({"metrics", "--timeout-ms", "500"});
        prometheus = r.out;
        return r.status == 0 && prometheus.find("process=\"trellis-worker@") != std::string::npos &&
               prometheus.find("process=\"trellis-dispatcher-p0@") != std::string::npos;
      },
      max_test_wait, "both processes to answer metrics"));
  auto e = read(prometheus);
  check_declared(e);
  CHECK(std::any_of(e.samples.begin(), e.samples.end(), [](const std::string& s) {
    return s.rfind("trellis_queue_wait_seconds_count{process=\"trellis-worker@", 0) == 0 &&
           s.find("queue=\"default\",task=\"add\"} 0") != std::string::npos;
  }));
  parse_with_client(dir, "prometheus", prometheus);

  auto open = c.client({"metrics", "--timeout-ms", "500", "--format", "openmetrics"});
  REQUIRE(open.status == 0);
  CHECK(open.out.find("# EOF\n") == open.out.size() - 6);
  parse_with_client(dir, "openmetrics", open.out);

  auto bad = c.client({"metrics", "--format", "json"});
  CHECK(bad.status == 2);
  CHECK(bad.out.empty());
  CHECK(c.stop_all());
}
