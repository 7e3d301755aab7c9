/// @file
/// The embedded benchmark: an engine in this process, a real SQLite file in a
/// fresh temporary directory per measurement, and a `noop` task, so what is
/// measured is Trellis itself (canvas, graph, envelopes, actors, store
/// commits) and never a handler.
///
/// Workloads (each on its own engine and store file):
///   throughput  one group of 100,000 noop, submit to result;
///   latency     a one-task workflow, submitted and awaited 1,000 times in a
///               row after a warm-up; p50 and p99 of the round trip;
///   chord       chord(10,000 noop, noop), submit to result;
///   chain       chain of 1,000 noop, submit to result;
///   noop        a group of 20,000 noop (bench/compare's size), submit to result;
///   results     a group of 5,000 echo(i), every result read back and checked;
///   payload     2,000 echo(B bytes) returning their argument, per size B, in
///               groups of at most 4 MiB of arguments each;
///   disk        what one small write + fdatasync costs where the store lives;
///   lifecycle   opening an engine on a new file, and shutting it down.
/// Each runs under synchronous=FULL (the default) and NORMAL. The output is a
/// markdown table per mode (workload | value | target | met? | syncs/task,
/// with the mean time of one sync).
///
/// With --json, the markdown goes to stderr and stdout gets one JSON object
/// per measured workload, in the shape bench/compare reads (see
/// bench/README.md): {"system":"trellis-embedded","workload":...,"tasks":...}.
///
/// "syncs" are calls of the SQLite VFS's xSync inside the timed window,
/// counted by a pass-through VFS this program installs as the default; each
/// becomes an fdatasync. bench/run_embedded.sh also counts the system calls
/// themselves with strace.

#include "trellis/trellis.hpp"

#include "bench_report.hpp"

#include <sqlite3.h>
#include <sys/vfs.h>
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// The shared report helpers (bench_report.hpp).
using namespace trellis::bench;

namespace fs = std::filesystem;
using bench_clock = std::chrono::steady_clock;

// -- sync counting ---------------------------------------------------------------

/// A pass-through VFS that counts xSync calls. It wraps the default VFS and
/// becomes the default itself, so the engine's `sqlite3_open_v2(..., nullptr)`
/// uses it without knowing.
class sync_counting_vfs {
 public:
  /// Installs the counting VFS as SQLite's default; call once, before any
  /// engine opens its store.
  static void install() {
    auto& self = instance();
    self.base_ = sqlite3_vfs_find(nullptr);
    if (self.base_ == nullptr) {
      throw std::runtime_error("SQLite has no default VFS to wrap");
    }
    self.vfs_ = *self.base_;
    self.vfs_.zName = "trellis_bench_counting";
    self.vfs_.szOsFile = static_cast<int>(sizeof(wrapped_file)) + self.base_->szOsFile;
    self.vfs_.pAppData = nullptr;
    self.vfs_.pNext = nullptr;
    self.vfs_.xOpen = &open;
    if (int rc = sqlite3_vfs_register(&self.vfs_, 1); rc != SQLITE_OK) {
      throw std::runtime_error(std::string{"cannot register the counting VFS: "} + sqlite3_errstr(rc));
    }
  }

  /// xSync calls so far, by every connection of this process.
  static std::uint64_t syncs() { return instance().syncs_.load(std::memory_order_relaxed); }
  /// Wall time spent inside those calls, in nanoseconds.
  static std::uint64_t sync_ns() { return instance().sync_ns_.load(std::memory_order_relaxed); }

 private:
  /// Our file object; the wrapped VFS's own file object follows it in memory.
  struct wrapped_file {
    sqlite3_file base;
    sqlite3_file* real;
  };

  static sync_counting_vfs& instance() {
    static sync_counting_vfs vfs;
    return vfs;
  }

  static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<wrapped_file*>(f)->real; }

  static int open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
    auto& self = instance();
    auto* w = reinterpret_cast<wrapped_file*>(file);
    w->real = reinterpret_cast<sqlite3_file*>(w + 1);
    w->base.pMethods = nullptr;
    int rc = self.base_->xOpen(self.base_, name, w->real, flags, out_flags);
    if (w->real->pMethods != nullptr) {
      // Copy the wrapped methods once (every file of the unix VFS shares the
      // same version) and replace only xSync and xClose.
      std::call_once(self.methods_once_, [&] {
        self.methods_ = *w->real->pMethods;
        self.methods_.xClose = &close;
        self.methods_.xRead = [](sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
          return real(f)->pMethods->xRead(real(f), p, n, off);
        };
        self.methods_.xWrite = [](sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
          return real(f)->pMethods->xWrite(real(f), p, n, off);
        };
        self.methods_.xTruncate = [](sqlite3_file* f, sqlite3_int64 size) {
          return real(f)->pMethods->xTruncate(real(f), size);
        };
        self.methods_.xSync = [](sqlite3_file* f, int sync_flags) {
          auto started = bench_clock::now();
          int sync_rc = real(f)->pMethods->xSync(real(f), sync_flags);
          auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(bench_clock::now() - started).count();
          instance().syncs_.fetch_add(1, std::memory_order_relaxed);
          instance().sync_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
          return sync_rc;
        };
        self.methods_.xFileSize = [](sqlite3_file* f, sqlite3_int64* size) {
          return real(f)->pMethods->xFileSize(real(f), size);
        };
        self.methods_.xLock = [](sqlite3_file* f, int lock) { return real(f)->pMethods->xLock(real(f), lock); };
        self.methods_.xUnlock = [](sqlite3_file* f, int lock) { return real(f)->pMethods->xUnlock(real(f), lock); };
        self.methods_.xCheckReservedLock = [](sqlite3_file* f, int* out) {
          return real(f)->pMethods->xCheckReservedLock(real(f), out);
        };
        self.methods_.xFileControl = [](sqlite3_file* f, int op, void* arg) {
          return real(f)->pMethods->xFileControl(real(f), op, arg);
        };
        self.methods_.xSectorSize = [](sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); };
        self.methods_.xDeviceCharacteristics = [](sqlite3_file* f) {
          return real(f)->pMethods->xDeviceCharacteristics(real(f));
        };
        if (self.methods_.iVersion >= 2) {
          self.methods_.xShmMap = [](sqlite3_file* f, int page, int size, int extend, void volatile** out) {
            return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
          };
          self.methods_.xShmLock = [](sqlite3_file* f, int offset, int n, int lock_flags) {
            return real(f)->pMethods->xShmLock(real(f), offset, n, lock_flags);
          };
          self.methods_.xShmBarrier = [](sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); };
          self.methods_.xShmUnmap = [](sqlite3_file* f, int remove) {
            return real(f)->pMethods->xShmUnmap(real(f), remove);
          };
        }
        if (self.methods_.iVersion >= 3) {
          self.methods_.xFetch = [](sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
            return real(f)->pMethods->xFetch(real(f), off, n, out);
          };
          self.methods_.xUnfetch = [](sqlite3_file* f, sqlite3_int64 off, void* p) {
            return real(f)->pMethods->xUnfetch(real(f), off, p);
          };
        }
      });
      w->base.pMethods = &self.methods_;
    }
    return rc;
  }

  static int close(sqlite3_file* f) {
    auto* r = real(f);
    int rc = r->pMethods->xClose(r);
    f->pMethods = nullptr;
    return rc;
  }

  sqlite3_vfs* base_ = nullptr;
  sqlite3_vfs vfs_{};
  sqlite3_io_methods methods_{};
  std::once_flag methods_once_;
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> sync_ns_{0};
};

/// Syncs in a window: how many and the wall time inside them.
struct sync_tally {
  std::uint64_t count = 0;
  std::uint64_t ns = 0;

  static sync_tally now() { return sync_tally{sync_counting_vfs::syncs(), sync_counting_vfs::sync_ns()}; }
  sync_tally since(const sync_tally& before) const { return sync_tally{count - before.count, ns - before.ns}; }
  sync_tally& operator+=(const sync_tally& other) {
    count += other.count;
    ns += other.ns;
    return *this;
  }
};

// -- thread CPU time ----------------------------------------------------------------

/// On-CPU and run-queue time of every thread of this process, from
/// /proc/self/task/*/schedstat (nanoseconds). The busiest thread is the
/// serial bottleneck (the dispatcher); the run-queue time says how much the
/// machine's other load delayed this process.
class thread_times {
 public:
  static thread_times now() {
    thread_times t;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
      std::ifstream in{entry.path() / "schedstat"};
      std::uint64_t on_cpu = 0;
      std::uint64_t waiting = 0;
      if (in >> on_cpu >> waiting) {
        t.by_tid_[entry.path().filename().string()] = {on_cpu, waiting};
      }
    }
    return t;
  }

  /// What the threads did since `before`, in milliseconds.
  struct usage {
    double on_cpu_ms = 0.0;
    double busiest_ms = 0.0;
    double waiting_ms = 0.0;
  };

  usage since(const thread_times& before) const {
    usage u;
    for (const auto& [tid, times] : by_tid_) {
      auto old = before.by_tid_.find(tid);
      auto on_cpu = times.first - (old == before.by_tid_.end() ? 0 : old->second.first);
      auto waiting = times.second - (old == before.by_tid_.end() ? 0 : old->second.second);
      u.on_cpu_ms += static_cast<double>(on_cpu) / 1e6;
      u.waiting_ms += static_cast<double>(waiting) / 1e6;
      u.busiest_ms = std::max(u.busiest_ms, static_cast<double>(on_cpu) / 1e6);
    }
    return u;
  }

 private:
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> by_tid_;
};

// -- environment -------------------------------------------------------------------

/// A fresh directory under `parent`, removed with everything in it.
class temp_dir {
 public:
  explicit temp_dir(const fs::path& parent) {
    auto pattern = (parent / "trellis-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("cannot create a temporary directory under " + parent.string());
    }
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const noexcept { return path_; }

 private:
  fs::path path_;
};

std::string filesystem_of(const fs::path& dir) {
  struct statfs info {};
  if (::statfs(dir.c_str(), &info) != 0) {
    return "unknown";
  }
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53UL:
      return "ext4";
    case 0x58465342UL:
      return "xfs";
    case 0x9123683EUL:
      return "btrfs";
    case 0x01021994UL:
      return "tmpfs (fsync is free here: the numbers are not durable ones)";
    case 0x794C7630UL:
      return "overlayfs";
    default: {
      std::ostringstream out;
      out << "f_type 0x" << std::hex << info.f_type;
      return out.str();
    }
  }
}

// -- statistics and formatting -----------------------------------------------------------

double ms_between(bench_clock::time_point a, bench_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// One line of the result table.
struct row {
  std::string workload;
  std::string value;
  std::string target;
  std::optional<bool> met;  ///< empty: informational, no target
  std::string syncs_per_task;
};

void print_table(std::ostream& out, const std::vector<row>& rows) {
  std::vector<std::vector<std::string>> cells{{"workload", "value", "target", "met?", "syncs/task (time each)"}};
  for (const auto& r : rows) {
    cells.push_back({r.workload, r.value, r.target, r.met ? (*r.met ? "yes" : "**no**") : "", r.syncs_per_task});
  }
  trellis::bench::print_markdown_table(out, cells);
}

// -- the workloads ------------------------------------------------------------------

struct bench_options {
  std::vector<std::string> modes{"FULL", "NORMAL"};
  std::vector<std::string> workloads{"disk", "lifecycle", "throughput", "latency", "chord", "chain"};
  std::size_t group_size = 100'000;
  std::size_t latency_runs = 1'000;
  std::size_t warmup = 200;
  std::vector<std::size_t> chord_sizes{10'000};
  std::vector<std::size_t> chain_lengths{1'000};
  std::size_t noop_count = 20'000;
  std::size_t results_count = 5'000;
  std::size_t payload_count = 2'000;
  std::vector<std::size_t> payload_bytes{100};
  std::size_t repeat = 1;
  std::size_t concurrency = 0;
  std::size_t fetch_batch = 0;
  std::size_t max_batch = 0;
  fs::path dir = fs::temp_directory_path();
  /// Print each timed window (CLOCK_MONOTONIC seconds) to stderr, so a
  /// profile recorded with `perf record -k CLOCK_MONOTONIC` can keep only the
  /// samples inside them (bench/profile_embedded.sh does).
  bool print_windows = false;
  /// Markdown to stderr, one JSON object per workload to stdout.
  bool json = false;
};

/// Where the markdown tables go: stdout, or stderr when stdout carries JSON.
std::ostream& markdown_out(const bench_options& opts) { return opts.json ? std::cerr : std::cout; }

/// One JSON line of the benchmark contract. Only numbers and fixed names go
/// in, so no string needs escaping.
class json_line {
 public:
  json_line(const std::string& workload, const std::string& mode, std::size_t tasks) {
    text_ = "{\"system\":\"trellis-embedded\",\"workload\":\"" + workload + "\",\"synchronous\":\"" + mode +
            "\",\"tasks\":" + std::to_string(tasks);
  }
  json_line& number(const std::string& field, double x) {
    std::ostringstream out;
    out << std::setprecision(9) << x;
    text_ += ",\"" + field + "\":" + out.str();
    return *this;
  }
  /// Prints the line when --json is on, at once, so a driver sees it even if
  /// a later workload fails.
  void emit(const bench_options& opts) const {
    if (opts.json) {
      std::cout << text_ << "}\n" << std::flush;
    }
  }

 private:
  std::string text_;
};

/// Reports a timed window when asked to; steady_clock is CLOCK_MONOTONIC on Linux.
void report_window(const bench_options& opts, const std::string& workload, bench_clock::time_point begin,
                   bench_clock::time_point end) {
  if (!opts.print_windows) {
    return;
  }
  auto seconds = [](bench_clock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); };
  std::cerr << "window " << workload << ' ' << std::fixed << std::setprecision(6) << seconds(begin) << ' '
            << seconds(end) << '\n';
}

constexpr const char* noop_name = "bench.noop";
constexpr const char* echo_name = "bench.echo";
constexpr auto generous = std::chrono::minutes{10};

/// A task that takes any arguments and returns nil: chain steps and the chord
/// body receive a previous result, group members nothing.
trellis::task_registry bench_tasks() {
  trellis::task_registry tasks;
  tasks.add_raw(noop_name,
                [](trellis::task_context&, const trellis::value::array&) -> trellis::task_result<trellis::value> {
                  return trellis::value{};
                });
  // Returns its first argument: the results and payload workloads read it back.
  tasks.add_raw(echo_name,
                [](trellis::task_context&, const trellis::value::array& args) -> trellis::task_result<trellis::value> {
                  return args.empty() ? trellis::value{} : args.front();
                });
  return tasks;
}

trellis::signature noop() { return trellis::signature{noop_name}; }
trellis::signature echo(trellis::value arg) {
  return trellis::signature{echo_name, trellis::value::array{std::move(arg)}};
}

/// An engine on a fresh store file, for one measurement.
class bench_engine {
 public:
  bench_engine(const bench_options& opts, const std::string& mode) : dir_(opts.dir) {
    trellis::engine_config cfg;
    cfg.store_path = (dir_.path() / "bench.db").string();
    cfg.synchronous = mode;
    cfg.concurrency = opts.concurrency;
    if (opts.fetch_batch != 0) {
      cfg.fetch_batch = opts.fetch_batch;
    }
    if (opts.max_batch != 0) {
      cfg.max_batch = opts.max_batch;
    }
    engine_.emplace(std::move(cfg), bench_tasks());
  }
  bench_engine(const bench_engine&) = delete;
  bench_engine& operator=(const bench_engine&) = delete;

  /// Submits and waits; a failed workflow ends the benchmark, since its
  /// numbers would mean nothing.
  trellis::value run(const trellis::canvas& flow) {
    auto handle = engine_->submit(flow);
    if (!handle) {
      throw std::runtime_error("submit failed: " + handle.error().message());
    }
    auto result = handle->wait_for(generous);
    if (!result) {
      throw std::runtime_error("workflow did not succeed: " + result.error().message());
    }
    return std::move(*result);
  }

  trellis::engine& get() { return *engine_; }

 private:
  // Declared in this order so the engine shuts down before its directory goes.
  temp_dir dir_;
  std::optional<trellis::engine> engine_;
};

/// What one timed run saw.
struct timed_run {
  double ms = 0.0;
  double submit_ms = 0.0;
  sync_tally syncs;
  thread_times::usage cpu;
};

/// Submits `flow` on a fresh engine and waits for its result.
timed_run run_once(const bench_options& opts, const std::string& mode, const std::string& workload,
                   const trellis::canvas& flow, std::size_t expected_results) {
  bench_engine e{opts, mode};
  auto syncs_before = sync_tally::now();
  auto threads_before = thread_times::now();
  auto t0 = bench_clock::now();
  auto handle = e.get().submit(flow);
  auto t1 = bench_clock::now();
  if (!handle) {
    throw std::runtime_error("submit failed: " + handle.error().message());
  }
  auto result = handle->wait_for(generous);
  auto t2 = bench_clock::now();
  auto cpu = thread_times::now().since(threads_before);
  report_window(opts, workload, t0, t2);
  if (!result) {
    throw std::runtime_error("workflow did not succeed: " + result.error().message());
  }
  if (expected_results != 0 && (!result->is_array() || result->as_array().size() != expected_results)) {
    throw std::runtime_error("workflow returned " + trellis::to_json(*result) + " instead of " +
                             std::to_string(expected_results) + " results");
  }
  return timed_run{ms_between(t0, t2), ms_between(t0, t1), sync_tally::now().since(syncs_before), cpu};
}

/// Runs `flow` `opts.repeat` times and keeps the median run (by wall time).
timed_run median_run(const bench_options& opts, const std::string& mode, const std::string& workload,
                     const trellis::canvas& flow, std::size_t expected_results) {
  std::vector<timed_run> runs;
  for (std::size_t i = 0; i < opts.repeat; ++i) {
    runs.push_back(run_once(opts, mode, workload, flow, expected_results));
  }
  std::sort(runs.begin(), runs.end(), [](const timed_run& a, const timed_run& b) { return a.ms < b.ms; });
  return runs[(runs.size() - 1) / 2];
}

/// "syncs per task (mean time of one sync)".
std::string per_task(const sync_tally& syncs, std::size_t tasks) {
  auto text = fixed(static_cast<double>(syncs.count) / static_cast<double>(tasks), 5);
  if (syncs.count != 0) {
    text += " (" + fixed(static_cast<double>(syncs.ns) / static_cast<double>(syncs.count) / 1000.0, 0) + " us)";
  }
  return text;
}

/// p50 of `n` timed calls of `step`.
template <class Step>
double p50_of(int n, Step step) {
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    auto t0 = bench_clock::now();
    step(i);
    samples.push_back(ms_between(t0, bench_clock::now()));
  }
  std::sort(samples.begin(), samples.end());
  return percentile(samples, 50);
}

/// The floor under every durable commit on the benchmark's file system. A
/// WAL that has been checkpointed is written again from its start, so most
/// commits overwrite blocks the file already has (no metadata to journal);
/// a growing WAL appends, which also commits the file system's journal.
void disk_floor(const bench_options& opts, std::vector<row>& rows) {
  temp_dir dir{opts.dir};
  auto file = (dir.path() / "probe").string();
  int fd = ::open(file.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + file);
  }
  constexpr int samples = 200;
  constexpr std::size_t page_size = 4096;
  std::vector<char> page(page_size, 'x');
  auto write_sync = [&](off_t offset) {
    if (::pwrite(fd, page.data(), page.size(), offset) != static_cast<ssize_t>(page.size()) || ::fdatasync(fd) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot write and sync " + file);
    }
  };
  auto append = p50_of(samples, [&](int i) { write_sync(static_cast<off_t>(i) * static_cast<off_t>(page_size)); });
  auto overwrite = p50_of(samples, [&](int i) { write_sync(static_cast<off_t>(i) * static_cast<off_t>(page_size)); });
  ::close(fd);
  rows.push_back(row{"disk: 4 KiB append + fdatasync, p50", fixed(append, 3) + " ms", "", {}, ""});
  rows.push_back(row{"disk: 4 KiB overwrite + fdatasync, p50", fixed(overwrite, 3) + " ms", "", {}, ""});
}

/// Opening an engine on a new file and shutting it down idle: what an
/// embedding program pays at start and exit.
void lifecycle(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  constexpr int runs = 5;
  std::vector<double> open_ms;
  std::vector<double> close_ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = bench_clock::now();
    bench_engine e{opts, mode};
    auto t1 = bench_clock::now();
    e.get().shutdown();
    close_ms.push_back(ms_between(t1, bench_clock::now()));
    open_ms.push_back(ms_between(t0, t1));
  }
  std::sort(open_ms.begin(), open_ms.end());
  std::sort(close_ms.begin(), close_ms.end());
  rows.push_back(
      row{"engine open on a new store file, p50 of 5", fixed(percentile(open_ms, 50), 1) + " ms", "", {}, ""});
  rows.push_back(row{"engine shutdown while idle, p50 of 5", fixed(percentile(close_ms, 50), 1) + " ms", "", {}, ""});
}

/// Two informational rows: CPU per task (all threads, and the busiest one,
/// whose time per task caps the rate at any core count), and how long the
/// threads sat runnable waiting for a CPU the machine's other load held.
void cpu_rows(const std::string& name, const std::string& unit, const thread_times::usage& cpu, std::size_t tasks,
              std::vector<row>& rows) {
  auto per_task_us = [&](double ms) { return ms * 1000.0 / static_cast<double>(tasks); };
  auto busiest = per_task_us(cpu.busiest_ms);
  rows.push_back(row{name + ": CPU per " + unit + ", all threads / busiest",
                     fixed(per_task_us(cpu.on_cpu_ms), 1) + " us / " + fixed(busiest, 1) + " us (cap " +
                         thousands(busiest > 0.0 ? 1e6 / busiest : 0.0) + "/s)",
                     "",
                     {},
                     ""});
  rows.push_back(row{name + ": waiting for a CPU, all threads", fixed(cpu.waiting_ms, 1) + " ms", "", {}, ""});
}

void throughput(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  auto flow = trellis::group(std::vector<trellis::canvas>(opts.group_size, noop()));
  auto r = median_run(opts, mode, "throughput", flow, opts.group_size);
  auto rate = static_cast<double>(opts.group_size) / (r.ms / 1000.0);
  auto name = "group of " + thousands(static_cast<double>(opts.group_size)) + " noop";
  rows.push_back(row{name + ": throughput", thousands(rate) + " tasks/s", ">= 100,000 tasks/s", rate >= 100'000.0,
                     per_task(r.syncs, opts.group_size)});
  rows.push_back(
      row{name + ": wall (submit returned at)", fixed(r.ms, 1) + " ms (" + fixed(r.submit_ms, 1) + " ms)", "", {}, ""});
  cpu_rows(name, "task", r.cpu, opts.group_size, rows);
}

/// With --repeat, each repetition is a fresh engine and the samples of all
/// of them are pooled before the percentiles are taken.
void latency(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  auto flow = trellis::canvas{noop()};
  std::vector<double> samples;
  samples.reserve(opts.latency_runs * opts.repeat);
  sync_tally syncs;
  thread_times::usage cpu;
  for (std::size_t r = 0; r < opts.repeat; ++r) {
    bench_engine e{opts, mode};
    for (std::size_t i = 0; i < opts.warmup; ++i) {
      e.run(flow);
    }
    auto syncs_before = sync_tally::now();
    auto threads_before = thread_times::now();
    auto first = bench_clock::now();
    for (std::size_t i = 0; i < opts.latency_runs; ++i) {
      auto t0 = bench_clock::now();
      e.run(flow);
      samples.push_back(ms_between(t0, bench_clock::now()));
    }
    report_window(opts, "latency", first, bench_clock::now());
    syncs += sync_tally::now().since(syncs_before);
    auto used = thread_times::now().since(threads_before);
    cpu.on_cpu_ms += used.on_cpu_ms;
    cpu.busiest_ms += used.busiest_ms;
    cpu.waiting_ms += used.waiting_ms;
  }
  std::sort(samples.begin(), samples.end());
  auto p50 = percentile(samples, 50);
  auto name = std::string{"one-task workflow round trip"};
  rows.push_back(row{name + ": p50", fixed(p50, 3) + " ms", "<= 0.3 ms", p50 <= 0.3, per_task(syncs, samples.size())});
  json_line{"latency", mode, samples.size()}.number("p50_ms", p50).number("p99_ms", percentile(samples, 99)).emit(opts);
  rows.push_back(row{name + ": p99", fixed(percentile(samples, 99), 3) + " ms", "", {}, ""});
  rows.push_back(row{name + ": max", fixed(samples.back(), 3) + " ms", "", {}, ""});
  cpu_rows(name, "round trip", cpu, samples.size(), rows);
}

void chord_bench(const bench_options& opts, const std::string& mode, std::size_t size, std::vector<row>& rows) {
  auto flow = trellis::chord(std::vector<trellis::canvas>(size, noop()), noop());
  auto r = median_run(opts, mode, "chord", flow, 0);
  auto seconds = r.ms / 1000.0;
  auto name = "chord of " + thousands(static_cast<double>(size)) + " noop + body";
  rows.push_back(
      row{name + ": wall", fixed(seconds, 3) + " s", "<= 0.3 s", seconds <= 0.3, per_task(r.syncs, size + 1)});
  cpu_rows(name, "task", r.cpu, size + 1, rows);
  json_line{"chord", mode, size}.number("seconds", seconds).emit(opts);
}

void chain_bench(const bench_options& opts, const std::string& mode, std::size_t length, std::vector<row>& rows) {
  auto flow = trellis::chain(std::vector<trellis::canvas>(length, noop()));
  auto r = median_run(opts, mode, "chain", flow, 0);
  auto name = "chain of " + thousands(static_cast<double>(length)) + " noop";
  rows.push_back(row{name + ": wall",
                     fixed(r.ms / 1000.0, 3) + " s (" + fixed(r.ms / static_cast<double>(length), 3) + " ms/step)",
                     "",
                     {},
                     per_task(r.syncs, length)});
  cpu_rows(name, "step", r.cpu, length, rows);
  json_line{"chain", mode, length}.number("seconds", r.ms / 1000.0).emit(opts);
}

/// A group of `--noop` noop, submit to result: bench/compare's no-op row.
void noop_bench(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  auto n = opts.noop_count;
  auto flow = trellis::group(std::vector<trellis::canvas>(n, noop()));
  auto r = median_run(opts, mode, "noop", flow, n);
  auto rate = static_cast<double>(n) / (r.ms / 1000.0);
  auto name = "group of " + thousands(static_cast<double>(n)) + " noop";
  rows.push_back(row{name + ": throughput", thousands(rate) + " tasks/s", "", {}, per_task(r.syncs, n)});
  json_line{"noop", mode, n}.number("seconds", r.ms / 1000.0).number("tasks_per_s", rate).emit(opts);
}

/// Submits the echo tasks as groups of at most `per_group` members, all
/// before waiting for any, then reads every result back and checks it: a run
/// that lost or mixed up a result has no rate to report. Large arguments go
/// in several groups because one submission must stay under the envelope
/// size limit.
timed_run echo_groups(const bench_options& opts, const std::string& mode, const std::string& workload,
                      const std::vector<trellis::value>& args, std::size_t per_group) {
  std::vector<trellis::canvas> flows;
  for (std::size_t first = 0; first < args.size(); first += per_group) {
    std::vector<trellis::canvas> members;
    for (std::size_t k = first; k < std::min(args.size(), first + per_group); ++k) {
      members.emplace_back(echo(args[k]));
    }
    flows.push_back(trellis::group(std::move(members)));
  }
  std::vector<timed_run> runs;
  for (std::size_t i = 0; i < opts.repeat; ++i) {
    bench_engine e{opts, mode};
    auto syncs_before = sync_tally::now();
    auto threads_before = thread_times::now();
    auto t0 = bench_clock::now();
    std::vector<trellis::workflow_handle> handles;
    handles.reserve(flows.size());
    for (const auto& flow : flows) {
      auto handle = e.get().submit(flow);
      if (!handle) {
        throw std::runtime_error("submit failed: " + handle.error().message());
      }
      handles.push_back(std::move(*handle));
    }
    auto t1 = bench_clock::now();
    std::size_t next = 0;
    for (const auto& handle : handles) {
      auto result = handle.wait_for(generous);
      if (!result) {
        throw std::runtime_error("workflow did not succeed: " + result.error().message());
      }
      if (!result->is_array()) {
        throw std::runtime_error(workload + ": a group returned " + trellis::to_json(*result));
      }
      for (const auto& r : result->as_array()) {
        if (next >= args.size() || r != args[next]) {
          throw std::runtime_error(workload + ": a result differs from its argument");
        }
        ++next;
      }
    }
    if (next != args.size()) {
      throw std::runtime_error(workload + ": " + std::to_string(args.size() - next) + " results are missing");
    }
    auto t2 = bench_clock::now();
    report_window(opts, workload, t0, t2);
    runs.push_back(timed_run{ms_between(t0, t2), ms_between(t0, t1), sync_tally::now().since(syncs_before),
                             thread_times::now().since(threads_before)});
  }
  std::sort(runs.begin(), runs.end(), [](const timed_run& a, const timed_run& b) { return a.ms < b.ms; });
  return runs[(runs.size() - 1) / 2];
}

/// `--results` echo(i) tasks whose results are all read back and checked.
void results_bench(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  auto n = opts.results_count;
  std::vector<trellis::value> args;
  args.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    args.emplace_back(static_cast<std::int64_t>(i));
  }
  auto r = echo_groups(opts, mode, "results", args, n);
  auto rate = static_cast<double>(n) / (r.ms / 1000.0);
  rows.push_back(row{"group of " + thousands(static_cast<double>(n)) + " echo(i), every result read back",
                     thousands(rate) + " tasks/s",
                     "",
                     {},
                     per_task(r.syncs, n)});
  json_line{"results", mode, n}.number("seconds", r.ms / 1000.0).number("tasks_per_s", rate).emit(opts);
}

/// `--payload-count` echo tasks per `--payload-bytes` size, each taking a
/// string of that many bytes and returning it.
void payload_bench(const bench_options& opts, const std::string& mode, std::vector<row>& rows) {
  auto n = opts.payload_count;
  for (auto bytes : opts.payload_bytes) {
    std::vector<trellis::value> args(n, trellis::value{std::string(bytes, 'x')});
    // 4 MiB of arguments per submission, half the envelope limit.
    auto per_group = std::max<std::size_t>(1, (std::size_t{4} << 20) / bytes);
    auto r = echo_groups(opts, mode, "payload", args, per_group);
    auto rate = static_cast<double>(n) / (r.ms / 1000.0);
    rows.push_back(row{thousands(static_cast<double>(n)) + " echo(" + thousands(static_cast<double>(bytes)) +
                           " bytes) in groups of <= 4 MiB: throughput",
                       thousands(rate) + " tasks/s",
                       "",
                       {},
                       per_task(r.syncs, n)});
    json_line{"payload", mode, n}
        .number("seconds", r.ms / 1000.0)
        .number("tasks_per_s", rate)
        .number("payload_bytes", static_cast<double>(bytes))
        .emit(opts);
  }
}

/// Tasks the chosen workloads run in this process, warm-up included: what
/// run_embedded.sh divides strace's fsync count by.
std::size_t tasks_run(const bench_options& opts) {
  std::size_t n = 0;
  for (const auto& w : opts.workloads) {
    if (w == "throughput") {
      n += opts.group_size * opts.repeat;
    } else if (w == "latency") {
      n += (opts.warmup + opts.latency_runs) * opts.repeat;
    } else if (w == "chord") {
      for (auto size : opts.chord_sizes) {
        n += (size + 1) * opts.repeat;
      }
    } else if (w == "chain") {
      for (auto length : opts.chain_lengths) {
        n += length * opts.repeat;
      }
    } else if (w == "noop") {
      n += opts.noop_count * opts.repeat;
    } else if (w == "results") {
      n += opts.results_count * opts.repeat;
    } else if (w == "payload") {
      n += opts.payload_count * opts.payload_bytes.size() * opts.repeat;
    }
  }
  return n * opts.modes.size();
}

/// "10000" or "1000, 10000": the sizes a repeatable flag was given.
std::string sizes(const std::vector<std::size_t>& xs) {
  std::string text;
  for (auto x : xs) {
    text += (text.empty() ? "" : ", ") + std::to_string(x);
  }
  return text;
}

int run(const bench_options& opts) {
  sync_counting_vfs::install();
  auto& out = markdown_out(opts);
  out << "## Trellis embedded benchmark\n\n"
      << "- machine: " << std::thread::hardware_concurrency() << " hardware threads, " << cpu_model() << '\n'
      << "- date: " << today() << '\n'
      << "- SQLite " << sqlite3_libversion() << ", store in " << opts.dir.string() << " (" << filesystem_of(opts.dir)
      << ")\n"
      << "- group " << opts.group_size << ", latency " << opts.latency_runs << " runs after " << opts.warmup
      << " warm-up, chord " << sizes(opts.chord_sizes) << ", chain " << sizes(opts.chain_lengths) << "; median of "
      << opts.repeat << " run(s) each\n"
      << "- load average before: " << load_average() << "\n\n";
  for (const auto& mode : opts.modes) {
    std::vector<row> rows;
    for (const auto& w : opts.workloads) {
      if (w == "disk") {
        disk_floor(opts, rows);
      } else if (w == "lifecycle") {
        lifecycle(opts, mode, rows);
      } else if (w == "throughput") {
        throughput(opts, mode, rows);
      } else if (w == "latency") {
        latency(opts, mode, rows);
      } else if (w == "chord") {
        for (auto size : opts.chord_sizes) {
          chord_bench(opts, mode, size, rows);
        }
      } else if (w == "chain") {
        for (auto length : opts.chain_lengths) {
          chain_bench(opts, mode, length, rows);
        }
      } else if (w == "noop") {
        noop_bench(opts, mode, rows);
      } else if (w == "results") {
        results_bench(opts, mode, rows);
      } else if (w == "payload") {
        payload_bench(opts, mode, rows);
      }
    }
    out << "### synchronous=" << mode << "\n\n";
    print_table(out, rows);
    out << '\n' << std::flush;
  }
  out << "- load average after: " << load_average() << "\n\n";
  out << "tasks run in this process: " << tasks_run(opts) << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench_options opts;
  std::string synchronous = "both";
  CLI::App app{"Trellis embedded benchmark: throughput, latency, chord and chain on a real SQLite file"};
  app.add_option("--synchronous", synchronous, "FULL, NORMAL or both")
      ->check(CLI::IsMember({"FULL", "NORMAL", "both"}));
  app.add_option("--workload", opts.workloads,
                 "disk, lifecycle, throughput, latency, chord, chain, noop, results, payload (repeatable)")
      ->check(CLI::IsMember(
          {"disk", "lifecycle", "throughput", "latency", "chord", "chain", "noop", "results", "payload"}));
  app.add_option("--group", opts.group_size, "tasks in the throughput group")->check(CLI::PositiveNumber);
  app.add_option("--latency-runs", opts.latency_runs, "measured round trips")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opts.warmup, "unmeasured round trips first");
  app.add_option("--chord", opts.chord_sizes, "chord header size (repeatable: one chord per size)")
      ->check(CLI::PositiveNumber);
  app.add_option("--chain", opts.chain_lengths, "chain length (repeatable: one chain per length)")
      ->check(CLI::PositiveNumber);
  app.add_option("--noop", opts.noop_count, "tasks in the noop workload's group")->check(CLI::PositiveNumber);
  app.add_option("--results", opts.results_count, "echo tasks in the results workload")->check(CLI::PositiveNumber);
  app.add_option("--payload-count", opts.payload_count, "echo tasks per payload size")->check(CLI::PositiveNumber);
  app.add_option("--payload-bytes", opts.payload_bytes, "payload size in bytes (repeatable)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", opts.json, "one JSON object per workload on stdout; the markdown goes to stderr");
  app.add_option("--repeat", opts.repeat,
                 "runs of each workload: the median run of group/chord/chain, pooled samples for latency")
      ->check(CLI::PositiveNumber);
  app.add_option("--concurrency", opts.concurrency, "handler threads (0: one per hardware thread)");
  app.add_option("--fetch-batch", opts.fetch_batch, "engine_config::fetch_batch (0: the default)");
  app.add_option("--max-batch", opts.max_batch, "engine_config::max_batch (0: the default)");
  app.add_option("--dir", opts.dir, "where the temporary store directories go (use a real disk)")
      ->check(CLI::ExistingDirectory);
  app.add_flag("--print-windows", opts.print_windows, "print each timed window (CLOCK_MONOTONIC) to stderr");
  CLI11_PARSE(app, argc, argv);
  if (synchronous != "both") {
    opts.modes = {synchronous};
  }
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::cerr << "trellis_bench_embedded: " << e.what() << '\n';
    return 1;
  }
}
