// pull_consumers' task side: which task consumers a process declares, and
// which of them one fetch pulls from (decision 0022). The rest of the class
// is in nats_consumers.cpp.

#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/nats_consumers.hpp"

#include <algorithm>
#include <climits>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long a consumer counts as busy after a fetch brought messages from
// it: pulled from at once by the next fetch, without asking the census.
// Long enough to span the steps of a running chain or group, short enough
// that an idle worker soon asks only the census.
constexpr milliseconds busy_window{2'000};

std::int64_t steady_ms(clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

expected<std::unique_ptr<consumer_binding>> bind_task_consumer(nats_connection& conn, std::string label,
                                                               std::string consumer, std::string filter,
                                                               std::string queue, std::string token) {
  auto b = bind_consumer(conn, std::move(label), conn.names().task_stream(), std::move(consumer), std::move(filter));
  if (b) {
    (*b)->queue = std::move(queue);
    (*b)->task_token = std::move(token);
  }
  return b;
}

/// Whether the census holds messages for what `b` consumes.
bool queued_for(const std::vector<queued_subject>& census, const consumer_binding& b) {
  return std::any_of(census.begin(), census.end(), [&](const queued_subject& s) {
    return (b.queue.empty() || s.queue == b.queue) && (b.task_token.empty() || s.task_token == b.task_token);
  });
}

}  // namespace

/// The bindings of `queue`, declared on first use: one per task of
/// `task_names`, or one for every task. Caller holds bindings_mutex_.
expected<std::vector<consumer_binding*>> pull_consumers::queue_bindings_locked(const std::string& queue) {
  auto& bound = task_bindings_[queue];
  if (bound.empty()) {
    const auto& names = conn_.names();
    const auto& tasks = conn_.cfg().task_names;
    std::vector<std::unique_ptr<consumer_binding>> made;
    if (tasks.empty()) {
      auto filter = names.queue_tasks(queue);
      auto consumer = names.queue_consumer(queue);
      if (!filter || !consumer) {
        return filter ? consumer.error() : filter.error();
      }
      auto b = bind_task_consumer(conn_, "queue '" + queue + "'", *consumer, *filter, queue, "");
      if (!b) {
        return b.error();
      }
      made.push_back(std::move(*b));
    }
    for (const auto& task : tasks) {
      auto filter = names.task(queue, task);
      auto consumer = names.queue_task_consumer(queue, task);
      if (!filter || !consumer) {
        return filter ? consumer.error() : filter.error();
      }
      auto b = bind_task_consumer(conn_, "task '" + task + "' of queue '" + queue + "'", *consumer, *filter, queue,
                                  subject_space::task_token(task));
      if (!b) {
        return b.error();
      }
      made.push_back(std::move(*b));
    }
    bound = std::move(made);
  }
  std::vector<consumer_binding*> out;
  for (auto& b : bound) {
    out.push_back(b.get());
  }
  return out;
}

/// The bindings of every queue (all_task_queues), declared on first use.
/// Caller holds bindings_mutex_.
expected<std::vector<consumer_binding*>> pull_consumers::all_queues_bindings_locked() {
  if (all_bindings_.empty()) {
    const auto& names = conn_.names();
    const auto& tasks = conn_.cfg().task_names;
    std::vector<std::unique_ptr<consumer_binding>> made;
    if (tasks.empty()) {
      auto b = bind_task_consumer(conn_, "every queue", names.all_queues_consumer(), names.all_tasks(), "", "");
      if (!b) {
        return b.error();
      }
      made.push_back(std::move(*b));
    }
    for (const auto& task : tasks) {
      auto b = bind_task_consumer(conn_, "task '" + task + "' of every queue", names.all_queues_task_consumer(task),
                                  names.task_in_all_queues(task), "", subject_space::task_token(task));
      if (!b) {
        return b.error();
      }
      made.push_back(std::move(*b));
    }
    all_bindings_ = std::move(made);
  }
  std::vector<consumer_binding*> out;
  for (auto& b : all_bindings_) {
    out.push_back(b.get());
  }
  return out;
}

std::vector<consumer_binding*> pull_consumers::resolve(const std::vector<std::string>& queues) {
  std::vector<consumer_binding*> out;
  std::lock_guard<std::mutex> guard{bindings_mutex_};
  if (queues.empty()) {
    if (!all_bindings_.empty()) {
      for (auto& b : all_bindings_) {
        out.push_back(b.get());
      }
      return out;
    }
    for (auto& [name, bound] : task_bindings_) {
      for (auto& b : bound) {
        out.push_back(b.get());
      }
    }
    return out;
  }
  for (const auto& q : queues) {
    auto bound = queue_bindings_locked(q);
    if (bound) {
      out.insert(out.end(), bound->begin(), bound->end());
    } else {
      conn_.remember(bound.error());
    }
  }
  return out;
}

std::vector<delivery> pull_consumers::fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                                  milliseconds wait) {
  std::vector<delivery> out;
  if (conn_.closed() || max == 0) {
    return out;
  }
  auto deadline = clock::now() + wait;
  auto bindings = resolve(queues);
  if (bindings.empty()) {
    conn_.remember(error{errc::invalid_config,
                         "fetch_tasks: no task queue to fetch from (none named, none "
                         "configured, all_task_queues off)"});
    conn_.pause(wait);
    return out;
  }
  auto batch = static_cast<int>(std::min<std::size_t>(
      {max, static_cast<std::size_t>(conn_.cfg().max_messages_per_pull), static_cast<std::size_t>(INT_MAX)}));
  if (bindings.size() == 1) {
    fetch_from_one(*bindings.front(), batch, deadline, out);
  } else {
    fetch_from_many(bindings, max, batch, deadline, out);
  }
  return out;
}

/// One consumer: pull requests that wait on the broker, in slices so that
/// close() is seen.
void pull_consumers::fetch_from_one(consumer_binding& b, int batch, clock::time_point deadline,
                                    std::vector<delivery>& out) {
  while (!conn_.closed()) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
    if (left <= milliseconds{0}) {
      return;
    }
    auto slice = std::min(left, max_fetch_slice);
    auto before = clock::now();
    auto s = fetch_once(b, batch, slice, false, out, true);
    if (!out.empty()) {
      return;
    }
    if (s != NATS_OK && !is_no_message(s) && clock::now() - before < slice) {
      conn_.pause(slice);  // failed at once (closed connection, bad subscription): pace
    }
  }
}

/// Many consumers (one per task): a pull request waits on one consumer
/// only, and a no-wait one costs an empty consumer a broker round of
/// `no_wait_expiry`, so asking each in turn would make every task wait for
/// all the others. Instead each round pulls at once from the consumers that
/// were busy lately or that the census says hold messages, then waits on a
/// busy one for up to a census interval, or, with none busy, until the
/// census is due again. A task of an idle consumer so waits at most about
/// `task_census_interval`; the tasks of a running chain or group far less.
void pull_consumers::fetch_from_many(const std::vector<consumer_binding*>& bindings, std::size_t max, int batch,
                                     clock::time_point deadline, std::vector<delivery>& out) {
  // Tasks left over from packs first.
  for (auto* b : bindings) {
    if (out.size() < max) {
      take_ready(*b, batch - static_cast<int>(out.size()), out);
    }
  }
  if (!out.empty()) {
    return;
  }
  auto pull = [&](consumer_binding& b, milliseconds wait, bool no_wait) {
    auto before = out.size();
    auto s = fetch_once(b, batch - static_cast<int>(out.size()), wait, no_wait, out, true);
    if (out.size() > before) {
      b.last_hit_ms.store(steady_ms(clock::now()), std::memory_order_relaxed);
    }
    return s;
  };
  while (!conn_.closed()) {
    auto now = clock::now();
    auto busy_since = steady_ms(now - busy_window);
    auto census = census_.current();
    // Rotate the first consumer asked, so that a busy one does not starve
    // the others.
    auto start = rotation_.fetch_add(1);
    consumer_binding* busy = nullptr;
    for (std::size_t i = 0; i < bindings.size() && out.size() < max; ++i) {
      auto& b = *bindings[(start + i) % bindings.size()];
      bool was_busy = b.last_hit_ms.load(std::memory_order_relaxed) >= busy_since;
      if (was_busy && busy == nullptr) {
        busy = &b;
      }
      if (was_busy || queued_for(*census, b)) {
        pull(b, milliseconds{0}, true);
      }
    }
    if (!out.empty()) {
      return;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
    if (left <= milliseconds{0}) {
      return;
    }
    if (busy != nullptr) {
      auto slice = std::min(left, task_census_interval);
      auto before = clock::now();
      auto s = pull(*busy, slice, false);
      if (!out.empty()) {
        return;
      }
      if (s != NATS_OK && !is_no_message(s) && clock::now() - before < slice) {
        conn_.pause(slice);  // failed at once: pace
      }
      continue;
    }
    auto until_census = std::chrono::duration_cast<milliseconds>(census_.next_due() - clock::now());
    conn_.pause(std::clamp(until_census, milliseconds{1}, left));
  }
}

}  // namespace trellis::detail
