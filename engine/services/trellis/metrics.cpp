#include "trellis/metrics.hpp"

#include "trellis/task.hpp"

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <sstream>

namespace trellis::detail {

namespace {

constexpr std::uint8_t histogram_base = 64;  // family ids of histograms start here

// Bucket upper bounds in seconds: 10 us to 60 s covers no-op handlers and
// slow webhooks alike.
constexpr std::array<double, 14> bucket_bounds{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01,
                                               0.05, 0.1,  0.5,  1.0,  5.0,  10.0, 60.0};

// Name and help of each family, in enum order (metrics.hpp).
struct family_text {
  const char* name;
  const char* help;
};

constexpr family_text counter_texts[] = {
    {"trellis_tasks_published_total", "Task messages handed to the transport."},
    {"trellis_tasks_succeeded_total", "Task outcomes applied as success (throughput)."},
    {"trellis_tasks_failed_total", "Task nodes failed for good (retries exhausted or not retried)."},
    {"trellis_retries_total", "Attempts scheduled again (retry volume)."},
    {"trellis_dead_letters_total", "Messages and steps sent to the dead-letter store."},
    {"trellis_duplicate_outcomes_total", "Outcomes ignored because their attempt was applied already."},
    {"trellis_idempotent_hits_total", "Steps answered from a stored idempotency key without running."},
    {"trellis_workflows_submitted_total", "Workflows accepted."},
    {"trellis_workflows_finished_total", "Workflows that reached a final state."},
    {"trellis_graph_evictions_total", "Idle workflow graphs dropped from the dispatcher's cache."},
    {"trellis_graph_rebuilds_total", "Evicted workflow graphs read back from the store."},
    {"trellis_abandoned_handlers_total", "Handlers left running past their hard time limit."},
    {"trellis_tasks_revoked_total", "Task nodes revoked by request."},
    {"trellis_progress_reports_total", "Progress reports stored."},
    {"trellis_progress_reports_ignored_total", "Progress reports of no running attempt, dropped."},
    {"trellis_rate_limit_gate_errors_total",
     "Rate-limit start slots that could not be reserved (broker away), tried again."},
    {"trellis_worker_children_crashed_total",
     "Process-pool children that died running a task (or broke the reply protocol) and were replaced."},
    {"trellis_worker_children_killed_total",
     "Process-pool children killed at a task's hard time limit and replaced."},
    {"trellis_pruned_rows_total",
     "Store rows deleted by retention (expired workflows and what they own, idempotency keys, dead letters)."},
};
constexpr family_text histogram_texts[] = {
    {"trellis_publish_latency_seconds",
     "Seconds from a node becoming ready to its task message handed to the transport."},
    {"trellis_queue_wait_seconds", "Seconds from a task message's publication to its handler starting (consumer lag)."},
    {"trellis_handler_duration_seconds", "Seconds a handler ran."},
    {"trellis_rate_limit_wait_seconds",
     "Seconds a rate-limited task waited for its start slot (waits over zero only)."},
};
constexpr std::uint8_t counter_families = std::size(counter_texts);
constexpr std::uint8_t histogram_families = std::size(histogram_texts);
static_assert(counter_families == static_cast<std::uint8_t>(counter::rows_pruned) + 1,
              "one text per counter");
static_assert(histogram_families == static_cast<std::uint8_t>(histogram::rate_limit_wait) + 1,
              "one text per histogram");

}  // namespace

struct metrics::series {
  std::atomic<std::uint64_t> value{0};  // counter value, or histogram count
  std::atomic<std::uint64_t> sum_ns{0};
  std::array<std::atomic<std::uint64_t>, bucket_bounds.size()> buckets{};
};

metrics::metrics() = default;
metrics::~metrics() = default;

metrics::series& metrics::find(std::uint8_t family, const std::string& queue, const std::string& task) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& slot = series_[std::make_tuple(family, queue, task)];
  if (!slot) {
    slot = std::make_unique<series>();
  }
  return *slot;
}

void metrics::add(counter c, const std::string& queue, const std::string& task, std::uint64_t n) {
  find(static_cast<std::uint8_t>(c), queue, task).value.fetch_add(n, std::memory_order_relaxed);
}

void metrics::observe(histogram h, const std::string& queue, const std::string& task, double seconds) {
  auto& s = find(static_cast<std::uint8_t>(histogram_base + static_cast<std::uint8_t>(h)), queue, task);
  s.value.fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
  for (std::size_t i = 0; i < bucket_bounds.size(); ++i) {
    if (seconds <= bucket_bounds[i]) {
      s.buckets[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

void metrics::gauge_add(gauge g, std::int64_t delta) {
  gauges_[static_cast<std::size_t>(g)].fetch_add(delta, std::memory_order_relaxed);
}

std::int64_t metrics::gauge_value(gauge g) const {
  return gauges_[static_cast<std::size_t>(g)].load(std::memory_order_relaxed);
}

std::uint64_t metrics::total(counter c) const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::uint64_t sum = 0;
  for (const auto& [key, s] : series_) {
    if (std::get<0>(key) == static_cast<std::uint8_t>(c)) {
      sum += s->value.load(std::memory_order_relaxed);
    }
  }
  return sum;
}

std::uint64_t metrics::count(histogram h) const {
  return total(static_cast<counter>(histogram_base + static_cast<std::uint8_t>(h)));
}

std::vector<std::string> metrics::queues() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::string> names;
  for (const auto& [key, s] : series_) {
    const auto& queue = std::get<1>(key);
    if (!queue.empty() && std::find(names.begin(), names.end(), queue) == names.end()) {
      names.push_back(queue);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

void metrics::declare_task(metrics_role role, const std::string& queue, const std::string& task) {
  auto counters = [&](std::initializer_list<counter> list, const std::string& q) {
    for (auto c : list) {
      find(static_cast<std::uint8_t>(c), q, task);
    }
  };
  auto histograms = [&](std::initializer_list<histogram> list, const std::string& t) {
    for (auto h : list) {
      find(static_cast<std::uint8_t>(histogram_base + static_cast<std::uint8_t>(h)), queue, t);
    }
  };
  // With the labels each family is recorded with (dispatcher_*.cpp): a
  // dead letter names no queue; publishing is counted per queue, since a
  // batch publishes many tasks at once; workflow counters have neither.
  if (role != metrics_role::worker) {
    counters({counter::tasks_succeeded, counter::tasks_failed, counter::retries, counter::tasks_revoked,
              counter::idempotent_hits},
             queue);
    counters({counter::dead_letters}, "");
    histograms({histogram::handler_duration}, task);
    find(static_cast<std::uint8_t>(counter::tasks_published), queue, "");
    find(static_cast<std::uint8_t>(histogram_base + static_cast<std::uint8_t>(histogram::publish_latency)), queue, "");
    for (auto c : {counter::workflows_submitted, counter::workflows_finished, counter::rows_pruned}) {
      find(static_cast<std::uint8_t>(c), "", "");
    }
  }
  if (role != metrics_role::dispatcher) {
    counters({counter::abandoned_handlers}, queue);
    histograms({histogram::queue_wait}, task);
  }
}

void metrics::declare_tasks(metrics_role role, const task_registry& tasks, const std::vector<std::string>& queues) {
  for (const auto& name : tasks.names()) {
    if (queues.empty()) {
      declare_task(role, tasks.find(name)->defaults.queue, name);
    }
    for (const auto& q : queues) {
      declare_task(role, q, name);
    }
  }
}

std::string metrics::prometheus_text() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::ostringstream out;
  // Every family, in enum order, with its series (sorted by labels, as the
  // map is): a family without series yet is still declared.
  auto first = series_.begin();
  auto series_of = [&](std::uint8_t family, auto&& write) {
    first = series_.lower_bound(std::make_tuple(family, std::string{}, std::string{}));
    for (auto i = first; i != series_.end() && std::get<0>(i->first) == family; ++i) {
      write("queue=\"" + std::get<1>(i->first) + "\",task=\"" + std::get<2>(i->first) + "\"", *i->second);
    }
  };
  for (std::uint8_t f = 0; f < counter_families; ++f) {
    const char* name = counter_texts[f].name;
    out << "# HELP " << name << ' ' << counter_texts[f].help << '\n';
    out << "# TYPE " << name << " counter\n";
    series_of(f, [&](const std::string& labels, const series& s) {
      out << name << '{' << labels << "} " << s.value.load() << '\n';
    });
  }
  for (std::uint8_t h = 0; h < histogram_families; ++h) {
    const char* name = histogram_texts[h].name;
    out << "# HELP " << name << ' ' << histogram_texts[h].help << '\n';
    out << "# TYPE " << name << " histogram\n";
    series_of(static_cast<std::uint8_t>(histogram_base + h), [&](const std::string& labels, const series& s) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < bucket_bounds.size(); ++i) {
        cumulative += s.buckets[i].load();
        char bound[32];
        std::snprintf(bound, sizeof bound, "%g", bucket_bounds[i]);
        out << name << "_bucket{" << labels << ",le=\"" << bound << "\"} " << cumulative << '\n';
      }
      out << name << "_bucket{" << labels << ",le=\"+Inf\"} " << s.value.load() << '\n';
      out << name << "_sum{" << labels << "} " << static_cast<double>(s.sum_ns.load()) / 1e9 << '\n';
      out << name << "_count{" << labels << "} " << s.value.load() << '\n';
    });
  }
  out << "# HELP trellis_abandoned_handlers_running Abandoned handler threads still running.\n"
      << "# TYPE trellis_abandoned_handlers_running gauge\n"
      << "trellis_abandoned_handlers_running " << gauge_value(gauge::abandoned_handlers) << '\n';
  return out.str();
}

}  // namespace trellis::detail
