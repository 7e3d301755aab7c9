#include "trellis/client_core.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/transport/cluster_bus.hpp"
#include "trellis/transport/partition.hpp"

#include <algorithm>
#include <utility>

namespace trellis::detail {

namespace {

/// The shortest wait for one status request, so that `wait_for` with
/// little time left still asks once.
constexpr std::chrono::milliseconds min_status_wait{200};

}  // namespace

std::optional<workflow_outcome> final_outcome(const std::string& id, const value& doc) {
  if (!doc.is_map()) {
    return std::nullopt;
  }
  const auto& m = doc.as_map();
  auto field = [&](const char* key) { return m.count(key) != 0 ? m.at(key) : value{}; };
  auto name = field("state");
  auto state = name.is_string() ? node_state_from_string(name.as_string()) : std::nullopt;
  if (!state || !is_terminal(*state)) {
    return std::nullopt;
  }
  return workflow_outcome{id, *state, field("result"), field("error")};
}

void watch_box::take_notice(std::string bytes) {
  {
    std::lock_guard<std::mutex> guard{mutex};
    if (notice || outcome) {
      return;  // a duplicate notice, or one we know already
    }
    notice = std::move(bytes);
  }
  changed.notify_all();
}

void watch_box::ask_again() {
  {
    std::lock_guard<std::mutex> guard{mutex};
    ask = true;
  }
  changed.notify_all();
}

void watch_registry::ask_all_again() {
  std::lock_guard<std::mutex> guard{mutex};
  for (auto& [id, e] : entries) {
    e.box->ask_again();
  }
}

expected<std::unique_ptr<client>> connect_client(const cluster_options& opts, const std::string& client_name,
                                                 std::chrono::milliseconds submit_timeout,
                                                 std::chrono::milliseconds request_timeout) {
  auto raw = cluster_client::connect(opts, client_name);
  if (!raw) {
    return raw.error();
  }
  auto core = std::make_shared<client_core>(std::move(*raw), opts.ns, submit_timeout, request_timeout);
  return client_core::make_client(std::move(core));
}

client_core::client_core(std::unique_ptr<cluster_client> raw, std::string ns,
                         std::chrono::milliseconds submit_timeout, std::chrono::milliseconds request_timeout)
    : raw_(std::move(raw)), ns_(std::move(ns)), submit_timeout_(submit_timeout), request_timeout_(request_timeout) {
  // One listener for the connection's life: it holds the registry, not the
  // core, so a NATS thread never ends the connection it runs on.
  raw_->bus().on_reconnect([registry = watches_] { registry->ask_all_again(); });
}

client_core::~client_core() = default;

std::unique_ptr<client> client_core::make_client(std::shared_ptr<client_core> core) {
  return std::unique_ptr<client>{new client{std::move(core)}};
}

expected<client_handle> client_core::handle(const std::string& id, const value* known_status, bool reopened) {
  // Declared before the lock: a watch that fails to subscribe is released
  // after it (release takes the lock too).
  std::shared_ptr<client_watch> watch;
  {
    std::lock_guard<std::mutex> subscribing{subscribe_mutex_};
    {
      std::lock_guard<std::mutex> guard{watches_->mutex};
      if (auto e = watches_->entries.find(id); e != watches_->entries.end()) {
        watch = e->second.watch.lock();
      }
    }
    if (!watch) {
      auto box = std::make_shared<watch_box>();
      watch = std::make_shared<client_watch>(shared_from_this(), id, box);
      // The subscription holds the box only: a notice never keeps a handle alive.
      auto watching = raw_->bus().watch_done(id, [box](std::string bytes) { box->take_notice(std::move(bytes)); });
      if (!watching) {
        raw_->bus().unwatch_done(id);
        return watching.error();
      }
      std::lock_guard<std::mutex> guard{watches_->mutex};
      watches_->entries[id] = watch_registry::entry{watch, std::move(box)};
    }
  }
  if (reopened) {
    watch->reopen();
  }
  if (known_status != nullptr) {
    watch->take_status(*known_status);
  }
  return client_handle{id, std::move(watch)};
}

void client_core::release(const std::string& id) {
  std::lock_guard<std::mutex> subscribing{subscribe_mutex_};
  {
    std::lock_guard<std::mutex> guard{watches_->mutex};
    auto e = watches_->entries.find(id);
    if (e == watches_->entries.end() || !e->second.watch.expired()) {
      return;  // never subscribed, or watched again meanwhile
    }
    watches_->entries.erase(e);
  }
  // One subscription (and nats.c delivery thread) per watched workflow:
  // end it, so a client that waits for thousands does not keep thousands.
  raw_->bus().unwatch_done(id);
}

expected<value> client_core::ask(const control_request& request, int partition,
                                 std::optional<std::chrono::milliseconds> timeout) {
  return raw_->ask(request, partition, timeout.value_or(request_timeout_));
}

expected<value> client_core::status(const std::string& id, std::optional<std::chrono::milliseconds> timeout) {
  control_request request;
  request.op = control_op::status;
  request.workflow_id = id;
  auto doc = ask(request, partition_of(id, raw_->partitions()), timeout);
  if (doc && !doc->is_map()) {
    return error{errc::malformed_envelope, "the dispatcher's status answer for workflow " + id + " is not a map"};
  }
  return doc;
}

client_watch::client_watch(std::shared_ptr<client_core> core, std::string id, std::shared_ptr<watch_box> box)
    : core_(std::move(core)), id_(std::move(id)), box_(std::move(box)) {}

client_watch::~client_watch() { core_->release(id_); }

bool client_watch::take_status(const value& doc) {
  auto outcome = final_outcome(id_, doc);
  if (!outcome) {
    return false;
  }
  {
    std::lock_guard<std::mutex> guard{box_->mutex};
    if (!box_->outcome) {
      box_->outcome = std::move(*outcome);
    }
  }
  box_->changed.notify_all();
  return true;
}

void client_watch::reopen() {
  {
    std::lock_guard<std::mutex> guard{box_->mutex};
    box_->outcome.reset();
    box_->notice.reset();
    box_->ask = true;
  }
  box_->changed.notify_all();
}

expected<workflow_outcome> client_watch::wait(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  // A huge timeout ("forever") must not overflow the deadline.
  auto start = clock::now();
  auto deadline = timeout >= std::chrono::hours{24 * 365} ? clock::time_point::max() : start + timeout;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock{box_->mutex};
      auto until = std::min(deadline, clock::now() + std::chrono::milliseconds{poll});
      box_->changed.wait_until(lock, until, [&] { return box_->outcome || box_->notice || box_->ask; });
      if (box_->outcome) {
        return *box_->outcome;
      }
      if (box_->notice) {
        auto bytes = std::move(*box_->notice);
        box_->notice.reset();
        auto note = unpack_from_string(bytes, bytes.size(), defaults::max_stored_value_depth);
        if (!note || !note->is_map()) {
          return error{errc::malformed_envelope, "unreadable completion notice for workflow " + id_};
        }
        if (note->as_map().count("result_too_large") != 0) {
          // Finished, with a result larger than a notice: the status has it
          // (its answer travels in pieces).
          box_->ask = true;
        } else if (auto outcome = final_outcome(id_, *note)) {
          box_->outcome = std::move(*outcome);
          return *box_->outcome;
        } else {
          return error{errc::malformed_envelope, "completion notice without a final state for workflow " + id_};
        }
      }
      auto now = clock::now();
      if (!box_->ask && now >= deadline) {
        return error{errc::timeout, "workflow " + id_ + " did not finish within " + std::to_string(timeout.count()) +
                                        " ms; it carries on"};
      }
      // Asked at first, after a reconnect, for a large result, and every
      // `poll` otherwise: the notice is core NATS and may be lost; the
      // dispatcher's store is not.
      box_->ask = false;
    }
    auto left = deadline == clock::time_point::max()
                    ? core_->request_timeout()
                    : std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    auto doc = core_->status(id_, std::clamp(left, min_status_wait, core_->request_timeout()));
    if (doc && take_status(*doc)) {
      std::lock_guard<std::mutex> guard{box_->mutex};
      return *box_->outcome;
    }
    // Running, or unanswered (a dispatcher restarting, the broker away):
    // ask again later.
    if (clock::now() >= deadline) {
      return error{errc::timeout, "workflow " + id_ + " did not finish within " + std::to_string(timeout.count()) +
                                      " ms; it carries on"};
    }
  }
}

std::optional<workflow_outcome> client_watch::outcome_now() {
  {
    std::lock_guard<std::mutex> guard{box_->mutex};
    if (box_->outcome) {
      return box_->outcome;
    }
  }
  auto doc = core_->status(id_);
  if (doc && take_status(*doc)) {
    std::lock_guard<std::mutex> guard{box_->mutex};
    return box_->outcome;
  }
  return std::nullopt;
}

}  // namespace trellis::detail
