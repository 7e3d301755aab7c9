#include "trellis/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace trellis::detail {

namespace {

constexpr std::uint8_t histogram_base = 64;  // family ids of histograms start here

// Bucket upper bounds in seconds: 10 us to 60 s covers no-op handlers and
// slow webhooks alike.
constexpr std::array<double, 14> bucket_bounds{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01,
                                               0.05, 0.1,  0.5,  1.0,  5.0,  10.0, 60.0};

const char* counter_name(counter c) {
  switch (c) {
    case counter::tasks_published:
      return "trellis_tasks_published_total";
    case counter::tasks_succeeded:
      return "trellis_tasks_succeeded_total";
    case counter::tasks_failed:
      return "trellis_tasks_failed_total";
    case counter::retries:
      return "trellis_retries_total";
    case counter::dead_letters:
      return "trellis_dead_letters_total";
    case counter::duplicates:
      return "trellis_duplicate_outcomes_total";
    case counter::idempotent_hits:
      return "trellis_idempotent_hits_total";
    case counter::workflows_submitted:
      return "trellis_workflows_submitted_total";
    case counter::workflows_finished:
      return "trellis_workflows_finished_total";
    case counter::graph_evictions:
      return "trellis_graph_evictions_total";
    case counter::graph_rebuilds:
      return "trellis_graph_rebuilds_total";
    case counter::abandoned_handlers:
      return "trellis_abandoned_handlers_total";
    case counter::tasks_revoked:
      return "trellis_tasks_revoked_total";
    case counter::progress_reports:
      return "trellis_progress_reports_total";
    case counter::progress_ignored:
      return "trellis_progress_reports_ignored_total";
    case counter::rate_limit_gate_errors:
      return "trellis_rate_limit_gate_errors_total";
  }
  return "trellis_unknown_total";
}

const char* histogram_name(histogram h) {
  switch (h) {
    case histogram::publish_latency:
      return "trellis_publish_latency_seconds";
    case histogram::queue_wait:
      return "trellis_queue_wait_seconds";
    case histogram::handler_duration:
      return "trellis_handler_duration_seconds";
    case histogram::rate_limit_wait:
      return "trellis_rate_limit_wait_seconds";
  }
  return "trellis_unknown_seconds";
}

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

std::string metrics::prometheus_text() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::ostringstream out;
  std::uint8_t last_family = 255;
  for (const auto& [key, s] : series_) {
    auto family = std::get<0>(key);
    auto labels = "queue=\"" + std::get<1>(key) + "\",task=\"" + std::get<2>(key) + "\"";
    if (family < histogram_base) {
      const char* name = counter_name(static_cast<counter>(family));
      if (family != last_family) {
        out << "# TYPE " << name << " counter\n";
      }
      out << name << '{' << labels << "} " << s->value.load() << '\n';
    } else {
      const char* name = histogram_name(static_cast<histogram>(family - histogram_base));
      if (family != last_family) {
        out << "# TYPE " << name << " histogram\n";
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < bucket_bounds.size(); ++i) {
        cumulative += s->buckets[i].load();
        char bound[32];
        std::snprintf(bound, sizeof bound, "%g", bucket_bounds[i]);
        out << name << "_bucket{" << labels << ",le=\"" << bound << "\"} " << cumulative << '\n';
      }
      out << name << "_bucket{" << labels << ",le=\"+Inf\"} " << s->value.load() << '\n';
      out << name << "_sum{" << labels << "} " << static_cast<double>(s->sum_ns.load()) / 1e9 << '\n';
      out << name << "_count{" << labels << "} " << s->value.load() << '\n';
    }
    last_family = family;
  }
  out << "# TYPE trellis_abandoned_handlers gauge\n"
      << "trellis_abandoned_handlers " << gauge_value(gauge::abandoned_handlers) << '\n';
  return out.str();
}

}  // namespace trellis::detail
