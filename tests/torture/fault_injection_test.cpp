// Torture, faults across processes: a cluster of one dispatcher, two
// workers and a nats-server runs rounds of touch-mark workflows (groups of
// chains of a short sleep and one to three marks: a file per step, one line
// per run of the step) while, at moments
// picked by progress (after a random number of new marks), a random one of
// them is killed with SIGKILL and started again, or stopped with SIGSTOP
// for a random pause and continued. Each round ends when its workflows
// finished; then every mark is counted. A missing mark is a lost effect, a
// process that exited on its own a crash (checked before every fault too,
// so our SIGKILL never hides one): either fails the test. Doubled
// marks are allowed only within what docs/storage.md says a fault can run
// again: the tasks a worker holds unacked (concurrency x fetch batch), for
// each worker the fault can reach. Prints its figures and seed.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"
#include "torture/torture_settings.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <deque>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

namespace {

using nlohmann::json;
using trellis::test::child_process;
using trellis::test::cluster_processes;

using trellis::test::between;
using trellis::test::marks_made;
using rng_t = trellis::test::torture_rng;

constexpr int workflows_per_round = 3;
constexpr int chains_per_workflow = 30;
constexpr int max_marks_per_chain = 3;
constexpr int worker_count = 2;
constexpr int concurrency = 2;
constexpr int fetch_batch = 4;

struct figures {
  int rounds = 0;
  int kills = 0;
  int stops = 0;
  std::size_t marks = 0;
  std::size_t lost = 0;
  std::size_t doubled = 0;
  std::size_t crashes = 0;
  std::deque<std::string> recent;  // the last faults, for a failure's message
};

/// The cluster under torture, with the processes that are current.
class victim_cluster {
 public:
  explicit victim_cluster(trellis::test::nats_server& server)
      : server_(server), procs_(cluster_processes::on_broker(server.url(), "faults", {}, {"--ack-wait-ms", "2000"})) {
    dispatcher_ = &procs_.start_dispatcher(procs_.db());
    procs_.wait_running(*dispatcher_);
    for (int i = 0; i < worker_count; ++i) {
      workers_.push_back(&start_worker());
    }
  }

  cluster_processes& procs() { return procs_; }

  /// SIGKILL to victim `v` (0..worker_count-1 a worker, then the
  /// dispatcher, then the server), and the same process started again.
  void kill_and_restart(std::size_t v) {
    if (v < workers_.size()) {
      workers_[v]->kill(SIGKILL);
      workers_[v]->wait();
      workers_[v] = &start_worker();
    } else if (v == workers_.size()) {
      dispatcher_->kill(SIGKILL);
      dispatcher_->wait();
      dispatcher_ = &procs_.start_dispatcher(procs_.db());
      procs_.wait_running(*dispatcher_);
    } else {
      server_.kill();
      server_.start();  // same port, same store; every process reconnects on its own
    }
  }

  /// SIGSTOP to victim `v` for `pause` (the fault itself), then SIGCONT.
  void stop_for(std::size_t v, std::chrono::milliseconds pause) {
    pid_t pid = v < workers_.size() ? workers_[v]->pid() : v == workers_.size() ? dispatcher_->pid() : server_.pid();
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    std::this_thread::sleep_for(pause);
    REQUIRE(::kill(pid, SIGCONT) == 0);
  }

  /// The current processes (nats-server included) that exited on their
  /// own, each as "worker 1 (pid 123): status 134" (128 + a signal's number
  /// when one ended it): nothing restarts a process but this test, so each
  /// is a crash.
  std::vector<std::string> crashed() {
    std::vector<std::string> out;
    auto check = [&](const std::string& what, child_process& p) {
      if (auto status = p.try_wait()) {
        out.push_back(what + " (pid " + std::to_string(p.pid()) + "): status " + std::to_string(*status));
      }
    };
    check("the dispatcher", *dispatcher_);
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      check("worker " + std::to_string(i), *workers_[i]);
    }
    if (server_.exited_on_its_own()) {
      out.push_back("nats-server");
    }
    return out;
  }

 private:
  child_process& start_worker() {
    auto& w = procs_.start_worker(
        {"--concurrency", std::to_string(concurrency), "--fetch-batch", std::to_string(fetch_batch)});
    procs_.wait_running(w);
    return w;
  }

  trellis::test::nats_server& server_;
  cluster_processes procs_;
  child_process* dispatcher_ = nullptr;
  std::vector<child_process*> workers_;
};

/// Fails the test, with the figures so far, if a process exited on its own.
void check_no_crash(victim_cluster& cluster, figures& fig) {
  auto crashes = cluster.crashed();
  fig.crashes = crashes.size();
  for (const auto& c : crashes) {
    std::cout << "torture faults: crashed: " << c << std::endl;
  }
  std::string recent;
  for (const auto& f : fig.recent) {
    recent += "\n  " + f;
  }
  INFO("kills " << fig.kills << ", stops " << fig.stops << ", in iteration " << fig.rounds
                << "; the last faults:" << recent);
  REQUIRE(crashes.empty());
}

}  // namespace

TEST_CASE(
    "Torture: workers, the dispatcher and nats-server killed or stopped at random moments lose no effect and "
    "run again no more than docs/storage.md allows",
    "[torture][faults]") {
  const auto seed = trellis::test::torture_seed();
  const auto duration = trellis::test::torture_duration();
  rng_t rng{seed};
  INFO("TRELLIS_TORTURE_SEED=" << seed);

  trellis::test::nats_server server;
  victim_cluster cluster{server};
  auto& procs = cluster.procs();
  figures fig;
  const auto deadline = std::chrono::steady_clock::now() + duration;
  do {
    ++fig.rounds;
    auto dir = procs.dir().file("round-" + std::to_string(fig.rounds));
    std::filesystem::create_directories(dir);
    std::vector<std::string> marks;
    std::string ids;
    for (int w = 0; w < workflows_per_round; ++w) {
      json group = json::array();
      for (int c = 0; c < chains_per_workflow; ++c) {
        json steps = json::array({{{"task", "sleep_ms"}, {"args", {between(rng, 5, 30)}}}});
        for (std::size_t k = 0, n = between(rng, 1, max_marks_per_chain); k < n; ++k) {
          marks.push_back(dir + "/mark-" + std::to_string(w) + "-" + std::to_string(c) + "-" + std::to_string(k));
          steps.push_back({{"task", "touch"}, {"args", {marks.back()}}, {"options", {{"immutable", true}}}});
        }
        group.push_back({{"chain", steps}});
      }
      auto file = trellis::test::write_file(procs.dir(), "wf.json", json{{"group", group}}.dump());
      auto r = procs.submit(file);
      INFO("submit stderr:\n" << r.err << "\n" << procs.logs());
      REQUIRE(r.status == 0);
      ids += (ids.empty() ? "'" : ",'") + json::parse(r.last_line()).at("id").get<std::string>() + "'";
    }

    // One to three faults, each once a random number of new marks appeared.
    for (std::size_t f = 0, faults = between(rng, 1, 3); f < faults; ++f) {
      auto target = std::min(marks.size(), marks_made(marks) + between(rng, 3, 25));
      REQUIRE(trellis::test::wait_until([&] { return marks_made(marks) >= target; }, trellis::test::max_test_wait,
                                        "the next fault's moment"));
      if (marks_made(marks) == marks.size()) {
        break;
      }
      check_no_crash(cluster, fig);  // before the fault, so that our SIGKILL cannot hide a crash
      auto victim = between(rng, 0, worker_count + 1);
      static const char* const names[] = {"worker 0", "worker 1", "the dispatcher", "nats-server"};
      static_assert(std::size(names) == worker_count + 2);
      const auto where = " at " + std::to_string(marks_made(marks)) + " of " + std::to_string(marks.size()) +
                         " marks in iteration " + std::to_string(fig.rounds);
      if (between(rng, 0, 1) == 0) {
        fig.recent.push_back(std::string{"SIGKILL and a restart of "} + names[victim] + where);
        cluster.kill_and_restart(victim);
        ++fig.kills;
      } else {
        auto pause = std::chrono::milliseconds{between(rng, 50, 1500)};
        fig.recent.push_back(std::string{"SIGSTOP of "} + names[victim] + " for " + std::to_string(pause.count()) +
                             " ms" + where);
        cluster.stop_for(victim, pause);
        ++fig.stops;
      }
      if (fig.recent.size() > 4) {
        fig.recent.pop_front();
      }
    }

    auto finished = "SELECT count(*) FROM workflows WHERE state IN (3, 4, 6) AND id IN (" + ids + ")";
    auto succeeded = "SELECT count(*) FROM workflows WHERE state = 3 AND id IN (" + ids + ")";
    INFO(procs.logs() << "\n" << server.jetstream_summary());
    REQUIRE(trellis::test::wait_until(
        [&] {
          return !cluster.crashed().empty() ||
                 trellis::test::try_count(procs.db(), finished.c_str()).value_or(0) == workflows_per_round;
        },
        trellis::test::max_test_wait, "the round's workflows to finish"));
    check_no_crash(cluster, fig);  // nothing exited but what the test killed
    CHECK(trellis::test::count_rows(procs.db(), succeeded) == workflows_per_round);
    for (const auto& m : marks) {
      auto lines = trellis::test::line_count(m);
      fig.lost += lines == 0 ? 1 : 0;
      fig.doubled += lines > 1 ? lines - 1 : 0;
    }
    fig.marks += marks.size();
  } while (std::chrono::steady_clock::now() < deadline);

  std::cout << "torture faults: seed " << seed << ", " << duration.count() << " s: iterations " << fig.rounds
            << ", marks " << fig.marks << ", kills " << fig.kills << ", stops " << fig.stops << ", lost " << fig.lost
            << ", doubled " << fig.doubled << ", crashes " << fig.crashes << std::endl;
  CHECK(fig.lost == 0);
  // Each fault re-runs at most what every worker it reaches holds unacked.
  CHECK(fig.doubled <= static_cast<std::size_t>((fig.kills + fig.stops) * worker_count * concurrency * fetch_batch));
  CHECK(procs.stop_all());
}
