#include "trellis/actors/progress_reporter.hpp"

#include "trellis/clock.hpp"
#include "trellis/transport/partition.hpp"

#include <utility>

namespace trellis::detail {

std::string attempt_key(const std::string& workflow_id, std::int32_t node, std::int32_t attempt) {
  return workflow_id + ":" + std::to_string(node) + ":" + std::to_string(attempt);
}

/// One running attempt: what it reported last, and whether that went out.
struct progress_reporter::attempt_entry {
  envelope head;  // the task's identity, as a progress envelope
  task_progress latest;
  bool unsent = false;
  bool closed = false;
  bool registered = false;  // in `open_`: it reported
  std::uint64_t sequence = 0;  // events sent, for their ids
};

class progress_reporter::sink : public progress_sink {
 public:
  sink(std::weak_ptr<progress_reporter> owner, std::shared_ptr<attempt_entry> entry)
      : owner_(std::move(owner)), entry_(std::move(entry)) {}

  void report(const task_progress& latest) override {
    auto owner = owner_.lock();
    if (!owner) {
      return;  // the worker pool is gone (an abandoned handler reports on)
    }
    std::lock_guard<std::mutex> guard{owner->mutex_};
    if (entry_->closed) {
      return;  // its outcome was reported: too late
    }
    entry_->latest = latest;
    entry_->unsent = true;
    if (!entry_->registered) {
      entry_->registered = true;
      owner->open_.emplace(entry_.get(), entry_);
    }
  }

  const std::shared_ptr<attempt_entry>& entry() const noexcept { return entry_; }

 private:
  std::weak_ptr<progress_reporter> owner_;
  std::shared_ptr<attempt_entry> entry_;
};

progress_reporter::progress_reporter(std::shared_ptr<transport> bus, int partitions)
    : bus_(std::move(bus)), partitions_(partitions) {}

progress_reporter::~progress_reporter() { stop(); }

void progress_reporter::start(std::chrono::milliseconds interval) {
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock{mutex_};
    while (!stopping_) {
      wake_.wait_for(lock, interval, [this] { return stopping_; });
      lock.unlock();
      flush();
      lock.lock();
    }
  });
}

void progress_reporter::stop() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

std::shared_ptr<progress_sink> progress_reporter::open(const envelope& task) {
  auto entry = std::make_shared<attempt_entry>();
  entry->head.type = envelope_type::progress;
  entry->head.workflow_id = task.workflow_id;
  entry->head.node = task.node;
  entry->head.attempt = task.attempt;
  entry->head.task = task.task;
  entry->head.trace = task.trace;
  // The attempt's own id, whatever the task message called itself.
  entry->head.id = attempt_key(task.workflow_id, task.node, task.attempt);
  return std::make_shared<sink>(weak_from_this(), std::move(entry));
}

outgoing_event progress_reporter::event_of(attempt_entry& entry) {
  auto e = entry.head;
  e.id = entry.head.id + ":progress:" + std::to_string(++entry.sequence);
  e.progress = entry.latest;
  e.sent_at = now_epoch_ms();
  entry.unsent = false;
  return outgoing_event{event_partition_of(e.workflow_id, partitions_), encode(e)};
}

std::optional<outgoing_event> progress_reporter::close(const std::shared_ptr<progress_sink>& reporting) {
  if (!reporting) {
    return std::nullopt;
  }
  const auto& entry = static_cast<const sink&>(*reporting).entry();
  {
    // The common case, a handler that never reported, takes one lock.
    std::lock_guard<std::mutex> guard{mutex_};
    if (!entry->registered) {
      entry->closed = true;
      return std::nullopt;
    }
  }
  std::lock_guard<std::mutex> publishing{publishing_};
  std::lock_guard<std::mutex> guard{mutex_};
  open_.erase(entry.get());
  entry->closed = true;
  if (!entry->unsent) {
    return std::nullopt;
  }
  return event_of(*entry);
}

std::size_t progress_reporter::flush() {
  std::lock_guard<std::mutex> publishing{publishing_};
  std::vector<outgoing_event> events;
  std::vector<std::shared_ptr<attempt_entry>> sent;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto& [id, entry] : open_) {
      if (entry->unsent) {
        events.push_back(event_of(*entry));
        sent.push_back(entry);
      }
    }
  }
  if (events.empty()) {
    return 0;
  }
  auto count = events.size();
  if (!bus_->publish_events(std::move(events))) {
    // The broker is away: these are due again at the next tick, unless a
    // newer report replaced them or their attempt closed meanwhile (its
    // outcome then waits for the broker too, and says more).
    std::lock_guard<std::mutex> guard{mutex_};
    for (auto& entry : sent) {
      entry->unsent = !entry->closed;
    }
    return 0;
  }
  return count;
}

}  // namespace trellis::detail
