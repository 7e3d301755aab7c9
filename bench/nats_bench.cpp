/// @file
/// The cluster benchmark: the embedded benchmark's workloads carried over
/// NATS JetStream, end to end, between separate processes:
///
///   nats-server      started here (free loopback port, JetStream store in a
///                    fresh temporary directory), as the integration tests
///                    start it (tests/support/nats_server.hpp);
///   dispatcher       a `trellis-demo dispatcher` process with its SQLite
///                    store in the same directory. A process, not an
///                    in-process cluster_node: that is how it is deployed, its
///                    peak RSS is its own (/proc/<pid>/status VmHWM), and the
///                    benchmark's client does not share its threads;
///   K workers        `trellis-demo worker` processes (`noop`, `identity`);
///   the client       this process, submitting over NATS with the code
///                    `trellis submit --wait` uses (trellis/cluster_client.hpp).
///
/// Every workload runs on a fresh set of processes and a fresh store, with 1
/// and 2 workers (or the `--workers` given). Each child is stopped by its
/// PID (SIGTERM, then SIGKILL), also when the benchmark fails.
///
/// Output: a markdown table per worker count, and with `--json` one JSON
/// object per workload and worker count on stdout (the tables then go to
/// stderr); the fields are those of the shared benchmark contract
/// (bench/README.md).

#include "trellis/cluster_client.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/trellis.hpp"

#include "support/child_process.hpp"
#include "support/nats_server.hpp"
#include "support/temp_dir.hpp"

#include "bench_report.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef TRELLIS_DEMO_BIN
#error "TRELLIS_DEMO_BIN must name the trellis-demo binary (bench/CMakeLists.txt sets it)"
#endif

namespace {

// The shared report helpers (bench_report.hpp).
using namespace trellis::bench;

using bench_clock = std::chrono::steady_clock;
using trellis::canvas;
using trellis::signature;
using trellis::value;
using trellis::detail::cluster_client;
using trellis::detail::workflow_outcome;

/// How long any one wait of the benchmark may take before it gives up: far
/// beyond any healthy run, so that only a stuck cluster hits it.
constexpr auto generous = std::chrono::minutes{10};
/// Tasks per workflow when a workload submits many (queued, payload): a
/// workflow is one message, and one group of a million tasks would exceed
/// NATS's (and the envelope's) size limit.
constexpr std::size_t max_tasks_per_workflow = 10'000;
/// Argument bytes per workflow for the payload workload, under the 8 MiB
/// envelope limit with room for the envelope and its result notice.
constexpr std::size_t max_payload_bytes_per_workflow = 4 * 1024 * 1024;

// -- options ------------------------------------------------------------------------

struct bench_options {
  std::vector<std::string> workloads{"noop", "results", "latency", "chord", "chain", "payload", "queued"};
  std::vector<std::size_t> worker_counts{1, 2};
  std::size_t concurrency = 0;  // handler threads per worker; 0: the worker's default
  std::size_t fetch_batch = 0;  // the worker's --fetch-batch; 0: its default
  std::size_t noop = 20'000;
  std::size_t results = 5'000;
  std::size_t latency_runs = 1'000;
  std::size_t warmup = 50;
  std::vector<std::size_t> chord{1'000, 10'000};
  std::vector<std::size_t> chain{100, 1'000};
  std::size_t payload_count = 2'000;
  std::vector<std::size_t> payload_bytes{100, 10'240, 1'048'576};
  std::size_t payload_budget_mb = 256;
  std::size_t queued = 100'000;
  bool json = false;
  bool print_windows = false;
  /// Where to copy each cluster's logs before its directory goes (empty: nowhere).
  std::string keep_logs;
};

// -- small helpers ---------------------------------------------------------------------

double seconds_between(bench_clock::time_point a, bench_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// Peak resident set of a process, in KiB (VmHWM); 0 when unknown.
long peak_rss_kb(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::atol(line.c_str() + 6);
    }
  }
  return 0;
}

/// CPU time a process used so far (user + system), in milliseconds; 0 when
/// unknown.
double cpu_ms(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  std::getline(in, text);
  // Fields after the command name, which is in parentheses and may hold spaces.
  auto close = text.rfind(')');
  if (close == std::string::npos) {
    return 0.0;
  }
  std::istringstream fields{text.substr(close + 2)};
  std::string field;
  double ticks = 0.0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14 || i == 15) {  // utime, stime
      ticks += std::atof(field.c_str());
    }
  }
  return ticks * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// CPU time of each part of the cluster.
struct cluster_cpu {
  double dispatcher = 0.0;
  double workers = 0.0;
  double server = 0.0;
  double client = 0.0;

  cluster_cpu since(const cluster_cpu& before) const {
    return cluster_cpu{dispatcher - before.dispatcher, workers - before.workers, server - before.server,
                       client - before.client};
  }
};

/// Polls `done` with a growing pause until it holds or `limit` passes; the
/// pause paces the polling and never stands in for the condition.
template <class Predicate>
bool poll_until(Predicate&& done, std::chrono::milliseconds limit) {
  auto deadline = bench_clock::now() + limit;
  auto pause = std::chrono::milliseconds{1};
  for (;;) {
    if (done()) {
      return true;
    }
    if (bench_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{20});
  }
}

// -- the tasks ------------------------------------------------------------------------

/// `noop` of trellis-demo takes no argument: in a chain or as a chord body it
/// must ignore the previous result.
signature noop() { return signature{"noop"}.immutable(); }
signature identity(value v) { return signature{"identity", value::array{std::move(v)}}; }

// -- the cluster ----------------------------------------------------------------------

/// nats-server, a dispatcher and K workers, each a child process stopped by
/// its PID when this object goes (workers, then the dispatcher, then the
/// server, each with SIGTERM and a bounded wait before SIGKILL).
class bench_cluster {
 public:
  bench_cluster(const bench_options& opts, std::size_t workers, bool start_workers_now) : opts_(opts) {
    trellis::test::nats_server_options server_opts;
    // A 1 MiB payload workload needs messages above NATS's default 1 MiB.
    server_opts.config_text = "max_payload: 8388608";
    server_.emplace(server_opts);
    dispatcher_ = std::make_unique<trellis::test::child_process>(
        std::vector<std::string>{TRELLIS_DEMO_BIN, "dispatcher", "--broker", server_->url(), "--db",
                                 dir_.file("bench.db")},
        dir_.file("dispatcher.out"), dir_.file("dispatcher.err"));
    await_running(*dispatcher_, "dispatcher");
    trellis::detail::cluster_options client_opts;
    client_opts.broker_urls = {server_->url()};
    auto client = cluster_client::connect(client_opts, "trellis-bench");
    if (!client) {
      throw std::runtime_error("cannot connect the benchmark's client: " + to_string(client.error()));
    }
    client_ = std::move(*client);
    worker_count_ = workers;
    if (start_workers_now) {
      start_workers(true);
    }
  }

  ~bench_cluster() {
    client_.reset();
    stop(workers_);
    if (dispatcher_) {
      dispatcher_->kill(SIGTERM);
      dispatcher_->wait_for(std::chrono::seconds{30});
    }
    if (!opts_.keep_logs.empty()) {
      keep_logs();
    }
    // server_ stops itself (by PID) when it goes.
  }

  bench_cluster(const bench_cluster&) = delete;
  bench_cluster& operator=(const bench_cluster&) = delete;

  /// Starts the K worker processes; with `await`, returns once each says it
  /// runs (its consumer declared).
  void start_workers(bool await) {
    for (std::size_t i = 0; i < worker_count_; ++i) {
      std::vector<std::string> argv{TRELLIS_DEMO_BIN, "worker", "--broker", server_->url()};
      if (opts_.concurrency != 0) {
        argv.insert(argv.end(), {"--concurrency", std::to_string(opts_.concurrency)});
      }
      if (opts_.fetch_batch != 0) {
        argv.insert(argv.end(), {"--fetch-batch", std::to_string(opts_.fetch_batch)});
      }
      auto name = "worker-" + std::to_string(i);
      workers_.push_back(
          std::make_unique<trellis::test::child_process>(argv, dir_.file(name + ".out"), dir_.file(name + ".err")));
    }
    if (await) {
      for (auto& w : workers_) {
        await_running(*w, "worker");
      }
    }
  }

  cluster_client& client() { return *client_; }

  /// Submits `flow` and waits for its outcome; a failed workflow ends the
  /// benchmark, since its numbers would mean nothing.
  workflow_outcome run(const canvas& flow) { return wait(submit(flow)); }

  std::string submit(const canvas& flow) {
    auto id = client_->submit(flow, true, std::chrono::duration_cast<std::chrono::milliseconds>(generous));
    if (!id) {
      fail("submit failed: " + to_string(id.error()));
    }
    return *id;
  }

  workflow_outcome wait(const std::string& id) {
    auto done = client_->wait(id, std::chrono::duration_cast<std::chrono::milliseconds>(generous));
    if (!done) {
      fail("no outcome for workflow " + id + ": " + to_string(done.error()));
    }
    if (done->state != trellis::node_state::success) {
      fail("workflow " + id + " ended " + std::string{to_string(done->state)} + ": " + to_json(done->error));
    }
    return std::move(*done);
  }

  /// Task messages waiting in the `default` queue (or delivered, not acked);
  /// a pack of tasks counts once.
  std::uint64_t queue_depth() {
    auto depth = client_->bus().queue_depth("default");
    if (!depth) {
      fail("cannot read the queue depth: " + to_string(depth.error()));
    }
    return *depth;
  }

  cluster_cpu cpu() const {
    cluster_cpu c;
    c.dispatcher = cpu_ms(dispatcher_->pid());
    for (const auto& w : workers_) {
      c.workers += cpu_ms(w->pid());
    }
    c.server = cpu_ms(server_->pid());
    c.client = cpu_ms(::getpid());
    return c;
  }

  long dispatcher_peak_rss_kb() const { return peak_rss_kb(dispatcher_->pid()); }
  long worker_peak_rss_kb() const {
    long peak = 0;
    for (const auto& w : workers_) {
      peak = std::max(peak, peak_rss_kb(w->pid()));
    }
    return peak;
  }

  [[noreturn]] void fail(const std::string& why) const {
    std::string text = why;
    auto tail = [&](const trellis::test::child_process& p, const std::string& name) {
      auto err = p.stderr_text();
      if (err.size() > 2000) {
        err = "..." + err.substr(err.size() - 2000);
      }
      text += "\n--- " + name + " stderr:\n" + err;
    };
    tail(*dispatcher_, "dispatcher");
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      tail(*workers_[i], "worker-" + std::to_string(i));
    }
    throw std::runtime_error(text);
  }

 private:
  void await_running(trellis::test::child_process& p, const std::string& what) {
    auto line = "trellis: " + what + " running";
    bool up = poll_until([&] { return p.try_wait().has_value() || p.stderr_text().find(line) != std::string::npos; },
                         std::chrono::seconds{30});
    if (!up || p.try_wait()) {
      fail("the " + what + " did not start: " + p.stderr_text());
    }
  }

  /// Copies the children's stderr and the server's log to a new directory
  /// under --keep-logs, for a run that needs explaining.
  void keep_logs() const {
    namespace fs = std::filesystem;
    fs::path to = fs::path{opts_.keep_logs} / dir_.path().filename();
    std::error_code ec;
    fs::create_directories(to, ec);
    for (const auto& entry : fs::directory_iterator(dir_.path(), ec)) {
      auto name = entry.path().filename().string();
      if (name.size() > 4 && name.substr(name.size() - 4) == ".err") {
        fs::copy_file(entry.path(), to / name, fs::copy_options::overwrite_existing, ec);
      }
    }
    std::ofstream{to / "nats-server.log"} << server_->log();
  }

  static void stop(std::vector<std::unique_ptr<trellis::test::child_process>>& children) {
    for (auto& c : children) {
      c->kill(SIGTERM);
    }
    for (auto& c : children) {
      c->wait_for(std::chrono::seconds{30});
    }
    children.clear();
  }

  const bench_options& opts_;
  // Declared first, so it goes last: the store and the logs live in it.
  trellis::test::temp_dir dir_;
  std::optional<trellis::test::nats_server> server_;
  std::unique_ptr<trellis::test::child_process> dispatcher_;
  std::vector<std::unique_ptr<trellis::test::child_process>> workers_;
  std::unique_ptr<cluster_client> client_;
  std::size_t worker_count_ = 0;
};

// -- results --------------------------------------------------------------------------

/// One measured workload at one worker count: a table row and a JSON line.
struct measurement {
  std::string workload;  // contract name: noop, results, latency, ...
  std::string label;     // table text
  std::size_t workers = 0;
  std::size_t tasks = 0;
  double seconds = 0.0;
  std::optional<double> tasks_per_s;
  std::optional<double> p50_ms;
  std::optional<double> p99_ms;
  std::optional<std::size_t> payload_bytes;
  long dispatcher_rss_kb = 0;
  long worker_rss_kb = 0;
  /// CPU used inside the timed window, by part (informational).
  std::optional<cluster_cpu> cpu;
  std::string value_text;
  std::string target;
  std::optional<bool> met;
};

std::string json_line(const measurement& m) {
  std::ostringstream out;
  out << std::setprecision(6) << "{\"system\":\"trellis-nats\",\"workload\":\"" << m.workload
      << "\",\"tasks\":" << m.tasks << ",\"seconds\":" << m.seconds;
  if (m.tasks_per_s) {
    out << ",\"tasks_per_s\":" << std::llround(*m.tasks_per_s);
  }
  if (m.p50_ms) {
    out << ",\"p50_ms\":" << *m.p50_ms;
  }
  if (m.p99_ms) {
    out << ",\"p99_ms\":" << *m.p99_ms;
  }
  out << ",\"workers\":" << m.workers;
  if (m.payload_bytes) {
    out << ",\"payload_bytes\":" << *m.payload_bytes;
  }
  if (m.dispatcher_rss_kb > 0) {
    out << ",\"dispatcher_peak_rss_kb\":" << m.dispatcher_rss_kb;
  }
  if (m.worker_rss_kb > 0) {
    out << ",\"worker_peak_rss_kb\":" << m.worker_rss_kb;
  }
  out << "}";
  return out.str();
}

void print_table(std::ostream& out, const std::vector<measurement>& rows) {
  std::vector<std::vector<std::string>> cells{{"workload", "value", "target", "met?", "dispatcher peak RSS",
                                               "worker peak RSS",
                                               "CPU us/task: dispatcher, workers, nats-server, client"}};
  for (const auto& r : rows) {
    std::string cpu;
    if (r.cpu && r.tasks != 0) {
      auto per_task = [&](double ms) { return fixed(ms * 1000.0 / static_cast<double>(r.tasks), 1); };
      cpu = per_task(r.cpu->dispatcher) + ", " + per_task(r.cpu->workers) + ", " + per_task(r.cpu->server) + ", " +
            per_task(r.cpu->client);
    }
    cells.push_back({r.label, r.value_text, r.target, r.met ? (*r.met ? "yes" : "**no**") : "",
                     thousands(static_cast<double>(r.dispatcher_rss_kb) / 1024.0) + " MiB",
                     thousands(static_cast<double>(r.worker_rss_kb) / 1024.0) + " MiB", cpu});
  }
  trellis::bench::print_markdown_table(out, cells);
}

void report_window(const bench_options& opts, const std::string& workload, bench_clock::time_point begin,
                   bench_clock::time_point end) {
  if (!opts.print_windows) {
    return;
  }
  auto seconds = [](bench_clock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); };
  std::cerr << "window " << workload << ' ' << std::fixed << std::setprecision(6) << seconds(begin) << ' '
            << seconds(end) << '\n';
}

// -- the workloads ------------------------------------------------------------------

/// Warms the connections, pull subscriptions and the store up, so that the
/// timed run measures the steady state.
void warm_up(bench_cluster& c) { c.run(trellis::group(std::vector<canvas>(100, noop()))); }

void finish(measurement& m, const bench_cluster& c, const cluster_cpu& cpu_before) {
  m.cpu = c.cpu().since(cpu_before);
  m.dispatcher_rss_kb = c.dispatcher_peak_rss_kb();
  m.worker_rss_kb = c.worker_peak_rss_kb();
}

measurement rate_row(const std::string& workload, std::string label, std::size_t workers, std::size_t tasks,
                     double seconds) {
  measurement m;
  m.workload = workload;
  m.label = std::move(label);
  m.workers = workers;
  m.tasks = tasks;
  m.seconds = seconds;
  m.tasks_per_s = static_cast<double>(tasks) / seconds;
  m.value_text = thousands(*m.tasks_per_s) + " tasks/s (" + fixed(seconds, 3) + " s)";
  return m;
}

measurement noop_group(const bench_options& opts, std::size_t workers) {
  bench_cluster c{opts, workers, true};
  warm_up(c);
  auto flow = trellis::group(std::vector<canvas>(opts.noop, noop()));
  auto cpu_before = c.cpu();
  auto t0 = bench_clock::now();
  auto id = c.submit(flow);
  auto committed = bench_clock::now();
  auto done = c.wait(id);
  auto t1 = bench_clock::now();
  report_window(opts, "noop", t0, t1);
  if (!done.result.is_array() || done.result.as_array().size() != opts.noop) {
    c.fail("the noop group returned " + std::to_string(done.result.is_array() ? done.result.as_array().size() : 0) +
           " results instead of " + std::to_string(opts.noop));
  }
  auto m = rate_row("noop", "group of " + thousands(static_cast<double>(opts.noop)) + " noop: throughput", workers,
                    opts.noop, seconds_between(t0, t1));
  m.value_text += ", submit answered after " + fixed(seconds_between(t0, committed) * 1000.0, 0) + " ms";
  if (workers == 2) {
    m.target = ">= 40,000 tasks/s";
    m.met = *m.tasks_per_s >= 40'000.0;
  }
  finish(m, c, cpu_before);
  return m;
}

measurement results_group(const bench_options& opts, std::size_t workers) {
  bench_cluster c{opts, workers, true};
  warm_up(c);
  std::vector<canvas> members;
  members.reserve(opts.results);
  for (std::size_t i = 0; i < opts.results; ++i) {
    members.emplace_back(identity(value{static_cast<std::int64_t>(i)}));
  }
  auto flow = trellis::group(std::move(members));
  auto cpu_before = c.cpu();
  auto t0 = bench_clock::now();
  auto done = c.run(flow);
  auto t1 = bench_clock::now();
  report_window(opts, "results", t0, t1);
  // Every result read back and checked: the i-th member returned i.
  const auto* results = done.result.is_array() ? &done.result.as_array() : nullptr;
  if (results == nullptr || results->size() != opts.results) {
    c.fail("the results group returned a wrong number of results");
  }
  for (std::size_t i = 0; i < results->size(); ++i) {
    if (!(*results)[i].is_integer() || (*results)[i].as_int() != static_cast<std::int64_t>(i)) {
      c.fail("result " + std::to_string(i) + " is " + to_json((*results)[i]));
    }
  }
  auto m = rate_row("results", thousands(static_cast<double>(opts.results)) + " identity tasks, results read back",
                    workers, opts.results, seconds_between(t0, t1));
  finish(m, c, cpu_before);
  return m;
}

measurement latency(const bench_options& opts, std::size_t workers) {
  bench_cluster c{opts, workers, true};
  canvas flow{noop()};
  for (std::size_t i = 0; i < opts.warmup; ++i) {
    c.run(flow);
  }
  std::vector<double> samples;
  samples.reserve(opts.latency_runs);
  auto cpu_before = c.cpu();
  auto first = bench_clock::now();
  for (std::size_t i = 0; i < opts.latency_runs; ++i) {
    auto t0 = bench_clock::now();
    c.run(flow);
    samples.push_back(seconds_between(t0, bench_clock::now()) * 1000.0);
  }
  auto last = bench_clock::now();
  report_window(opts, "latency", first, last);
  std::sort(samples.begin(), samples.end());
  measurement m;
  m.workload = "latency";
  m.label = "one-task workflow round trip (submit to done notice)";
  m.workers = workers;
  m.tasks = opts.latency_runs;
  m.seconds = seconds_between(first, last);
  m.p50_ms = percentile(samples, 50);
  m.p99_ms = percentile(samples, 99);
  m.value_text = "p50 " + fixed(*m.p50_ms, 2) + " ms, p99 " + fixed(*m.p99_ms, 2) + " ms";
  finish(m, c, cpu_before);
  return m;
}

measurement timed_flow(const bench_options& opts, std::size_t workers, const std::string& workload,
                       const std::string& label, const canvas& flow, std::size_t tasks) {
  bench_cluster c{opts, workers, true};
  warm_up(c);
  auto cpu_before = c.cpu();
  auto t0 = bench_clock::now();
  c.run(flow);
  auto t1 = bench_clock::now();
  report_window(opts, workload, t0, t1);
  measurement m;
  m.workload = workload;
  m.label = label;
  m.workers = workers;
  m.tasks = tasks;
  m.seconds = seconds_between(t0, t1);
  m.value_text = fixed(m.seconds, 3) + " s (" + fixed(m.seconds * 1000.0 / static_cast<double>(tasks), 3) + " ms/task)";
  finish(m, c, cpu_before);
  return m;
}

measurement payload(const bench_options& opts, std::size_t workers, std::size_t bytes) {
  // A budget on the bytes carried, so that 1 MiB payloads do not write
  // gigabytes: fewer tasks, as many as the budget allows.
  auto budget = opts.payload_budget_mb * 1024 * 1024;
  auto tasks = std::max<std::size_t>(1, std::min(opts.payload_count, budget / bytes));
  auto per_workflow =
      std::max<std::size_t>(1, std::min(max_tasks_per_workflow, max_payload_bytes_per_workflow / bytes));
  bench_cluster c{opts, workers, true};
  warm_up(c);
  std::string blob(bytes, 'x');
  std::vector<canvas> flows;
  for (std::size_t done = 0; done < tasks; done += per_workflow) {
    std::vector<canvas> members(std::min(per_workflow, tasks - done), identity(value{blob}));
    flows.push_back(trellis::group(std::move(members)));
  }
  auto cpu_before = c.cpu();
  auto t0 = bench_clock::now();
  std::vector<std::string> ids;
  for (const auto& f : flows) {
    ids.push_back(c.submit(f));
  }
  std::size_t returned = 0;
  for (const auto& id : ids) {
    auto done = c.wait(id);
    for (const auto& r : done.result.as_array()) {
      if (!r.is_string() || r.as_string().size() != bytes) {
        c.fail("a payload task returned something else than its argument");
      }
      ++returned;
    }
  }
  auto t1 = bench_clock::now();
  report_window(opts, "payload", t0, t1);
  if (returned != tasks) {
    c.fail("payload: " + std::to_string(returned) + " results for " + std::to_string(tasks) + " tasks");
  }
  auto m = rate_row("payload",
                    thousands(static_cast<double>(tasks)) + " identity tasks of " +
                        thousands(static_cast<double>(bytes)) + " bytes in and out",
                    workers, tasks, seconds_between(t0, t1));
  m.payload_bytes = bytes;
  finish(m, c, cpu_before);
  return m;
}

measurement queued(const bench_options& opts, std::size_t workers) {
  bench_cluster c{opts, workers, false};
  std::vector<std::string> ids;
  auto submitted_from = bench_clock::now();
  for (std::size_t done = 0; done < opts.queued; done += max_tasks_per_workflow) {
    auto n = std::min(max_tasks_per_workflow, opts.queued - done);
    ids.push_back(c.submit(trellis::group(std::vector<canvas>(n, noop()))));
  }
  auto submitted = bench_clock::now();
  // Every task message is in the stream before the first worker starts. The
  // depth counts messages, and a large submission's tasks travel in packs of
  // several (docs/wire-protocol.md, "Packs"), so the count to expect is not
  // known here: wait until it has not grown for 50 polls (at least a second).
  std::uint64_t last_depth = 0;
  int unchanged = 0;
  if (!poll_until(
          [&] {
            auto depth = c.queue_depth();
            unchanged = depth > 0 && depth == last_depth ? unchanged + 1 : 0;
            last_depth = depth;
            return unchanged >= 50;
          },
          std::chrono::duration_cast<std::chrono::milliseconds>(generous))) {
    c.fail("the dispatcher did not finish publishing " + std::to_string(opts.queued) + " tasks");
  }
  auto published = bench_clock::now();
  auto cpu_before = c.cpu();
  auto t0 = bench_clock::now();
  c.start_workers(false);
  for (const auto& id : ids) {
    c.wait(id);
  }
  auto t1 = bench_clock::now();
  report_window(opts, "queued", t0, t1);
  auto m =
      rate_row("queued", thousands(static_cast<double>(opts.queued)) + " queued noop drained (workers started after)",
               workers, opts.queued, seconds_between(t0, t1));
  // How fast the dispatcher takes in submissions and publishes, on its own.
  m.value_text += "; before: submitted in " + fixed(seconds_between(submitted_from, submitted), 2) +
                  " s, all published after " + fixed(seconds_between(submitted_from, published), 2) + " s";
  finish(m, c, cpu_before);
  return m;
}

std::vector<measurement> run_all(const bench_options& opts, std::size_t workers) {
  std::vector<measurement> rows;
  for (const auto& w : opts.workloads) {
    auto before = rows.size();
    if (w == "noop") {
      rows.push_back(noop_group(opts, workers));
    } else if (w == "results") {
      rows.push_back(results_group(opts, workers));
    } else if (w == "latency") {
      rows.push_back(latency(opts, workers));
    } else if (w == "chord") {
      for (auto n : opts.chord) {
        rows.push_back(timed_flow(opts, workers, "chord",
                                  "chord of " + thousands(static_cast<double>(n)) + " noop + body: wall",
                                  // The header size, as the contract and the
                                  // embedded benchmark count a chord.
                                  trellis::chord(std::vector<canvas>(n, noop()), noop()), n));
      }
    } else if (w == "chain") {
      for (auto n : opts.chain) {
        rows.push_back(timed_flow(opts, workers, "chain",
                                  "chain of " + thousands(static_cast<double>(n)) + " noop: wall",
                                  trellis::chain(std::vector<canvas>(n, noop())), n));
      }
    } else if (w == "payload") {
      for (auto b : opts.payload_bytes) {
        rows.push_back(payload(opts, workers, b));
      }
    } else if (w == "queued") {
      rows.push_back(queued(opts, workers));
    }
    if (opts.json) {
      // As each finishes, so a long run shows progress and a failure keeps
      // what was measured.
      for (auto i = before; i < rows.size(); ++i) {
        std::cout << json_line(rows[i]) << std::endl;
      }
    }
  }
  return rows;
}

int run(const bench_options& opts) {
  std::ostream& out = opts.json ? std::cerr : std::cout;
  out << "## Trellis cluster benchmark over NATS JetStream\n\n"
      << "- machine: " << std::thread::hardware_concurrency() << " hardware threads, " << cpu_model() << '\n'
      << "- date: " << today() << '\n'
      << "- one nats-server (JetStream file store), one `trellis-demo dispatcher`, K `trellis-demo worker` "
         "processes (concurrency "
      << (opts.concurrency == 0 ? std::string{"default"} : std::to_string(opts.concurrency)) << ", fetch batch "
      << (opts.fetch_batch == 0 ? std::string{"default"} : std::to_string(opts.fetch_batch))
      << "), the client in this process; a fresh cluster and store per workload\n"
      << "- load average before: " << load_average() << "\n\n"
      << std::flush;
  for (auto workers : opts.worker_counts) {
    auto rows = run_all(opts, workers);
    out << "### " << workers << (workers == 1 ? " worker" : " workers") << "\n\n";
    print_table(out, rows);
    out << '\n' << std::flush;
  }
  out << "- load average after: " << load_average() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench_options opts;
  std::vector<std::size_t> workers;
  CLI::App app{"Trellis cluster benchmark: the embedded workloads over NATS JetStream, with K worker processes"};
  app.add_option("--workload", opts.workloads, "noop, results, latency, chord, chain, payload, queued (repeatable)")
      ->check(CLI::IsMember({"noop", "results", "latency", "chord", "chain", "payload", "queued"}));
  app.add_option("--workers", workers, "worker processes (repeatable; default: 1, then 2)")->check(CLI::Range(1, 64));
  app.add_option("--concurrency", opts.concurrency, "handler threads per worker (0: the worker's default)");
  app.add_option("--fetch-batch", opts.fetch_batch, "the workers' --fetch-batch (0: their default)")
      ->check(CLI::Range(0, 256));
  app.add_option("--noop", opts.noop, "tasks in the noop group")->check(CLI::PositiveNumber);
  app.add_option("--results", opts.results, "tasks whose results are read back")->check(CLI::PositiveNumber);
  app.add_option("--latency-runs", opts.latency_runs, "sequential one-task round trips")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opts.warmup, "unmeasured round trips before the latency runs");
  app.add_option("--chord", opts.chord, "chord header size (repeatable)")->check(CLI::PositiveNumber);
  app.add_option("--chain", opts.chain, "chain length (repeatable)")->check(CLI::PositiveNumber);
  app.add_option("--payload-count", opts.payload_count, "payload tasks per size")->check(CLI::PositiveNumber);
  app.add_option("--payload-bytes", opts.payload_bytes, "argument size of the payload tasks (repeatable)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{max_payload_bytes_per_workflow}));
  app.add_option("--payload-budget-mb", opts.payload_budget_mb,
                 "at most this many MiB of arguments per payload size (fewer tasks for large payloads)")
      ->check(CLI::PositiveNumber);
  app.add_option("--queued", opts.queued, "noop tasks queued before the workers start")->check(CLI::PositiveNumber);
  app.add_flag("--json", opts.json, "one JSON object per measurement on stdout (the tables go to stderr)");
  app.add_option("--keep-logs", opts.keep_logs, "copy each cluster's process logs under this directory");
  app.add_flag("--print-windows", opts.print_windows, "print each timed window (CLOCK_MONOTONIC) to stderr");
  CLI11_PARSE(app, argc, argv);
  if (!workers.empty()) {
    opts.worker_counts = workers;
  }
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::cerr << "trellis_bench_nats: " << e.what() << '\n';
    return 1;
  }
}
