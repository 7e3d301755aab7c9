#pragma once

/// @file
/// Internal to the NATS transport: the durable pull consumers a process
/// reads (a worker's one per task and queue, a dispatcher's
/// `dispatcher-<partition>`), the pull requests, and the deliveries handed
/// out and not acked yet. The lost-task consumer uses the same bindings
/// (nats_loops.hpp). Which task consumers exist and which a fetch pulls
/// from is in nats_task_consumers.cpp; the rest in nats_consumers.cpp.

#include "trellis/error.hpp"
#include "trellis/transport/nats_census.hpp"
#include "trellis/transport/nats_handles.hpp"
#include "trellis/transport/nats_uploads.hpp"
#include "trellis/transport/transport.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace trellis::detail {

class nats_connection;

/// One durable pull consumer of this process and its pull subscriptions.
/// nats.c refuses concurrent fetches on one subscription, so each consumer
/// keeps a pool; a fetch borrows one. `mutex` guards the pool, `ready` and
/// `envelopes_per_message`; the names are fixed once bound.
struct consumer_binding {
  std::string label;  // "task 'add' of queue 'payments'", "every queue", "partition 0 events"
  std::string stream;
  std::string consumer;
  std::string filter;
  /// A task consumer's queue and task token (subject_space::task_token);
  /// empty where its filter takes any (`all-task-…`: any queue).
  std::string queue;
  std::string task_token;
  /// When a task fetch last brought messages from it (steady clock, ms):
  /// a consumer busy in the last moments is pulled from without asking the
  /// census first (see fetch_tasks).
  std::atomic<std::int64_t> last_hit_ms{0};
  std::mutex mutex;
  // Owned here until the transport is destroyed: a natsMsg refers to its
  // subscription without holding it, and unacked messages may outlive any
  // one fetch.
  std::vector<subscription_ptr> owned;
  std::vector<natsSubscription*> idle;
  // Tasks of packs fetched beyond what their fetch_tasks call asked for,
  // handed out first by the next call (they are unacked, so a process that
  // stops lets JetStream deliver their packs again).
  std::deque<delivery> ready;
  // Tasks per message expected of the next task fetch, to size its pull
  // request in messages (see keep_batch); 0 until the first fetch.
  std::size_t envelopes_per_message = 0;

  /// An idle subscription, or a new one bound to the consumer (never
  /// creating it). Errors: broker_unavailable while disconnected, or what
  /// JetStream answers.
  expected<natsSubscription*> borrow(nats_connection& conn);
  /// Returns a borrowed subscription to the pool.
  void give_back(natsSubscription* sub);
};

/// Declares (creates or updates) the durable consumer `consumer` of
/// `stream`, filtered on `filter`, and returns its binding. `label` names it
/// in errors. Errors: broker_unavailable while disconnected, and as
/// nats_connection::api_error.
expected<std::unique_ptr<consumer_binding>> bind_consumer(nats_connection& conn, std::string label, std::string stream,
                                                          std::string consumer, std::string filter);

/// The task and event consumers of one connection, and the deliveries they
/// handed out: each token keeps its natsMsg (a pack's, shared by its
/// envelopes) until it is acked.
///
/// Thread-safe; `fetch_tasks` may run on many threads at once. Locks:
/// `bindings_mutex_` guards which bindings exist (declaring one is a broker
/// request made under it); each binding's own mutex its subscriptions;
/// `inflight_mutex_` the deliveries not acked yet, the event tokens the
/// event thread waits on, and `events_acked_`. None is held while calling a
/// sink.
class pull_consumers {
 public:
  /// `event_subject`: `trellis.<ns>.event.<partition>`, the event
  /// consumer's filter.
  /// Stubs of large messages are read through `uploads`.
  pull_consumers(nats_connection& conn, upload_store& uploads, std::string event_subject);
  pull_consumers(const pull_consumers&) = delete;
  pull_consumers& operator=(const pull_consumers&) = delete;

  /// At connect: the consumers the configuration asks for (`all-queues`,
  /// each of `task_queues`, and with `consume_events` the event consumer).
  expected<void> declare();

  /// `nats_transport::fetch_tasks`.
  std::vector<delivery> fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                    std::chrono::milliseconds wait);
  /// Acks `d` (a pack with its last envelope); unknown tokens are ignored.
  void ack(const delivery& d);
  /// As `ack`, but the message, once none of its deliveries is held any
  /// more, is handed back (JetStream's nak: delivered again at once) when
  /// any of them was released; unknown tokens are ignored.
  void release(const delivery& d);
  /// JetStream's "in progress" for `d`; unknown tokens are ignored.
  void touch(const delivery& d);
  /// JetStream's "in progress" for every delivery this process still
  /// holds for a live holder: each task message fetched and not acked
  /// (running, or waiting behind another task in a fetched batch), and each
  /// event handed to the current event sink and not acked. Not the events
  /// of a replaced sink: those must come again. Called by the keep-alive
  /// thread (nats_loops.hpp) more often than AckWait, so that nothing a
  /// live process holds is delivered a second time, however long it takes.
  /// Only messages JetStream has not heard of for `quiet` are marked: most
  /// are acked within milliseconds and never need it. First it takes in
  /// task messages that reached an idle subscription after their fetch
  /// gave up (adopt_late_tasks), so that they are marked too.
  void keep_alive(std::chrono::milliseconds quiet);
  /// `nats_transport::work_already_out`: a scan of the task stream, then of
  /// `partition`'s events.
  expected<std::unordered_set<std::string>> work_already_out(int partition);

  // --- the event thread's side (event_feed) -----------------------------------

  /// The event consumer, declared on first use; null (the error remembered)
  /// while it cannot be.
  consumer_binding* event_binding();
  /// One pull request of up to `max_messages_per_pull` events, waiting up to
  /// one fetch slice. Returns the status (see fetch_once).
  natsStatus fetch_events(consumer_binding& b, std::vector<delivery>& out);
  /// Backpressure: blocks while the event sink holds `max_events_in_flight`
  /// unacked events; false once the connection is closed.
  bool wait_for_event_room();
  /// Counts `batch` as handed to the event sink, until each is acked.
  void hand_out_events(const std::vector<delivery>& batch);
  /// A new event sink owes nothing for its predecessor's deliveries.
  void forget_unacked_events();
  /// Wakes `wait_for_event_room` (closing).
  void wake_event_waiters();

  // --- teardown (nats_link) ------------------------------------------------------

  /// Drops every delivery not acked, before the subscriptions they point to.
  void forget_deliveries();
  /// Drops every binding and its subscriptions.
  void clear_bindings();

 private:
  /// A delivered message and how many of its deliveries (one, or the events
  /// of a pack) are not acked yet.
  struct inflight_message {
    message_ptr msg;
    std::size_t unacked = 1;
    /// A task message (this process is a worker holding it), not an event.
    bool task = false;
    /// One of its deliveries was released, not acked: nak it, don't ack it.
    bool released = false;
    /// When JetStream last heard of it: fetched, or marked in progress.
    std::chrono::steady_clock::time_point heard{};
    /// A stub's header (nats_uploads.hpp): its pieces are removed once it
    /// is acked. Empty for any other message.
    std::string upload;
  };

  void settle(const delivery& d, bool released);
  void adopt_stub(message_ptr m, expected<std::string> body, std::vector<delivery>& out, bool tasks,
                  std::chrono::steady_clock::time_point heard);
  expected<void> ensure_event_binding_locked();
  expected<std::vector<consumer_binding*>> queue_bindings_locked(const std::string& queue);
  expected<std::vector<consumer_binding*>> all_queues_bindings_locked();
  std::vector<consumer_binding*> resolve(const std::vector<std::string>& queues);
  void fetch_from_one(consumer_binding& b, int batch, std::chrono::steady_clock::time_point deadline,
                      std::vector<delivery>& out);
  void fetch_from_many(const std::vector<consumer_binding*>& bindings, std::size_t max, int batch,
                       std::chrono::steady_clock::time_point deadline, std::vector<delivery>& out);
  void adopt(natsMsgList& list, std::vector<delivery>& out, bool tasks, bool late = false);
  bool take_ready(consumer_binding& b, int batch, std::vector<delivery>& out);
  void keep_batch(consumer_binding& b, std::size_t taken, std::size_t messages, int batch, std::vector<delivery>& out);
  natsStatus fetch_once(consumer_binding& b, int batch, std::chrono::milliseconds wait, bool no_wait,
                        std::vector<delivery>& out, bool tasks = false);
  int take_leftovers(natsSubscription* sub, int batch, std::vector<delivery>& out, bool tasks);
  void adopt_late_tasks();
  std::pair<natsStatus, int> fetch_messages(consumer_binding& b, int batch, std::chrono::milliseconds wait,
                                            bool no_wait, std::vector<delivery>& out, bool tasks);

  nats_connection& conn_;
  upload_store& uploads_;
  const std::string event_subject_;

  std::mutex bindings_mutex_;
  // Task consumers: by queue, and those of every queue (all_task_queues);
  // one per task with `task_names`, else one for every task.
  std::map<std::string, std::vector<std::unique_ptr<consumer_binding>>> task_bindings_;
  std::vector<std::unique_ptr<consumer_binding>> all_bindings_;
  task_census census_;
  std::unique_ptr<consumer_binding> event_binding_;
  std::atomic<std::size_t> rotation_{0};

  std::mutex inflight_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<inflight_message>> inflight_;
  std::uint64_t next_token_ = 1;
  /// Tokens of the events handed to the current event sink and not acked
  /// yet; the event loop waits on `events_acked_` while there are
  /// `max_events_in_flight` of them. A new sink (a restarted dispatcher)
  /// starts from none: its predecessor's deliveries come again after
  /// AckWait with new tokens.
  std::unordered_set<std::uint64_t> unacked_events_;
  std::condition_variable events_acked_;
};

}  // namespace trellis::detail
