#include "trellis/transport/inproc_transport.hpp"

#include <algorithm>

namespace trellis::detail {

expected<void> inproc_transport::publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (closed_) {
      return error{errc::shutting_down, "in-process transport is closed; task messages for queue '" + queue +
                                            "' stay in the store and are published on restart"};
    }
    auto& levels = queues_[queue];
    for (auto& m : messages) {
      levels[static_cast<std::size_t>(std::clamp(m.priority, 0, 9))].push_back(std::move(m.bytes));
    }
    messages.clear();
  }
  ready_.notify_all();
  return {};
}

std::vector<delivery> inproc_transport::fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                                    std::chrono::milliseconds wait) {
  std::vector<delivery> out;
  std::unique_lock<std::mutex> lock{mutex_};
  // An empty list means every queue (embedded mode runs all of them).
  auto consumed = [&](const std::string& name) {
    return queues.empty() || std::find(queues.begin(), queues.end(), name) != queues.end();
  };
  auto available = [&] {
    std::size_t n = 0;
    for (const auto& [name, levels] : queues_) {
      for (const auto& q : levels) {
        n += consumed(name) ? q.size() : 0;
      }
    }
    return n;
  };
  ++waiting_;
  ready_.wait_for(lock, wait, [&] { return closed_ || available() > 0; });
  --waiting_;
  if (closed_) {
    return out;
  }
  // Share what is there among the consumers still waiting, so one worker
  // thread does not take a whole burst while its siblings idle.
  auto share = std::max<std::size_t>(1, available() / (waiting_ + 1));
  auto take = std::min(max, share);
  for (auto& [name, levels] : queues_) {
    if (!consumed(name)) {
      continue;
    }
    for (auto level = levels.rbegin(); level != levels.rend() && out.size() < take; ++level) {
      while (out.size() < take && !level->empty()) {
        out.push_back(delivery{std::move(level->front()), 0, 1});
        level->pop_front();
      }
    }
  }
  return out;
}

void inproc_transport::ack_task(const delivery&) {
  // Nothing to release: an in-process message lives only until it is fetched.
}

expected<void> inproc_transport::publish_events(std::vector<outgoing_event> messages) {
  // One dispatcher in-process: the partition does not matter.
  std::vector<delivery> batch;
  batch.reserve(messages.size());
  for (auto& m : messages) {
    batch.push_back(delivery{std::move(m.bytes), 0, 1});
  }
  std::lock_guard<std::mutex> guard{sink_mutex_};
  if (!sink_) {
    return error{errc::shutting_down, "in-process transport has no event consumer; the dispatcher is gone"};
  }
  sink_(std::move(batch));
  return {};
}

void inproc_transport::consume_events(std::function<void(std::vector<delivery>)> sink) {
  std::lock_guard<std::mutex> guard{sink_mutex_};
  sink_ = std::move(sink);
}

void inproc_transport::ack_event(const delivery&) {
  // Events are handed over synchronously; the store is their durability.
}

void inproc_transport::consume_control(std::function<void(delivery)> sink) {
  {
    std::lock_guard<std::mutex> guard{control_mutex_};
    control_sink_ = std::move(sink);
  }
  control_answered_.notify_all();
}

void inproc_transport::answer_control(const delivery& d, const std::string& reply) {
  {
    std::lock_guard<std::mutex> guard{control_mutex_};
    auto i = control_answers_.find(d.token);
    if (i == control_answers_.end()) {
      return;  // its asker stopped waiting
    }
    i->second = reply;
  }
  control_answered_.notify_all();
}

expected<std::string> inproc_transport::ask_control(std::string request, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::function<void(delivery)> sink;
  std::uint64_t token = 0;
  {
    // A dispatcher that is still starting installs its sink in a moment.
    std::unique_lock<std::mutex> lock{control_mutex_};
    control_answered_.wait_until(lock, deadline, [&] { return control_sink_ || control_closed_; });
    if (control_closed_ || !control_sink_) {
      return error{errc::shutting_down, "in-process transport has no control consumer; the dispatcher is gone"};
    }
    sink = control_sink_;
    token = ++last_control_token_;
    control_answers_.emplace(token, std::nullopt);
  }
  // Outside the lock: the sink sends to the dispatcher, which may answer at once.
  sink(delivery{std::move(request), token, 1});
  std::unique_lock<std::mutex> lock{control_mutex_};
  auto& answer = control_answers_.at(token);
  control_answered_.wait_until(lock, deadline, [&] { return answer.has_value() || control_closed_; });
  auto reply = std::move(answer);
  control_answers_.erase(token);
  if (reply) {
    return std::move(*reply);
  }
  if (control_closed_) {
    return error{errc::shutting_down, "in-process transport closed before the dispatcher answered"};
  }
  return error{errc::timeout,
               "the dispatcher did not answer a control request within " + std::to_string(wait.count()) + " ms"};
}

void inproc_transport::close() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
  }
  ready_.notify_all();
  {
    std::lock_guard<std::mutex> guard{control_mutex_};
    control_closed_ = true;
  }
  control_answered_.notify_all();
}

std::map<std::string, std::size_t> inproc_transport::depths() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::map<std::string, std::size_t> out;
  for (const auto& [name, levels] : queues_) {
    auto& n = out[name];
    for (const auto& level : levels) {
      n += level.size();
    }
  }
  return out;
}

}  // namespace trellis::detail
