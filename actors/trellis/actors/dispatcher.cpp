#include "trellis/actors/dispatcher.hpp"

#include "trellis/actors/task_runner.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/envelope.hpp"
#include "trellis/store/store_reports.hpp"
#include "trellis/transport/partition.hpp"
#include "trellis/workflow_graph.hpp"

#include <caf/actor_system.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace trellis::detail {

namespace {

/// A submission with at least this many tasks ready at once is committed
/// before they are encoded and published in chunks of this size (see
/// `dispatcher_logic::submit`); below it, one commit after the encoding is
/// cheaper than the extra sync.
constexpr std::size_t publish_early_chunk = 1024;

/// Thrown by `dispatcher_logic::check` when the store refuses a read or a
/// write, from deep inside a handler, and turned into the actor's exit
/// reason by its exception handler: the supervisor does not restart a
/// dispatcher whose store failed (a restart would run again the tasks whose
/// outcomes could not be committed), and the facade reports the error.
struct store_failure {
  error err;
};

epoch_ms now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// The node's row as it must be stored now; `retry_base` is carried along so
/// that replacing the row never resets a replayed node's retry budget.
node_record row_of(const std::string& wf, node_id leaf, const graph_node& n, node_state state, value result,
                   value error, epoch_ms due_at, epoch_ms now) {
  node_record row;
  row.workflow_id = wf;
  row.node = leaf;
  row.task = n.sig->task();
  row.state = state;
  row.attempt = n.attempt;
  row.result = std::move(result);
  row.error = std::move(error);
  row.due_at = due_at;
  row.updated_at = now;
  row.retry_base = n.retry_base;
  return row;
}

value error_value(const std::string& type, const std::string& message) {
  return value(value::map{{"type", type}, {"message", message}});
}

struct active_workflow {
  explicit active_workflow(canvas c) : graph(std::move(c)) {}
  workflow_graph graph;
  /// Its place in the cache's use order (`dispatcher_state::lru`); only
  /// while `timers` is 0.
  std::list<std::string>::iterator lru;
  /// Tells this stay in the cache from earlier ones of the same workflow:
  /// a due message scheduled before the workflow was last dropped (finished,
  /// revoked, replayed from the dead-letter queue) carries an older one and
  /// is ignored, so `timers` counts exactly this stay's own.
  std::uint64_t incarnation = 0;
  /// Due-time messages (retries, countdowns) scheduled in this stay and not
  /// yet received: they live only in the mailbox, so the graph must stay
  /// cached. While there are any it is pinned: out of the use order, where
  /// eviction would have to step over it on every commit.
  std::int32_t timers = 0;
};

struct pending_reply {
  caf::typed_response_promise<std::string> promise;
  std::string workflow_id;
  /// Non-zero for a submission that came over the transport: it is answered
  /// through `transport::answer_submission` too.
  std::uint64_t submission_token = 0;
  /// Non-zero for a control request (a replay over the transport): it is
  /// answered through `transport::answer_control` too.
  std::uint64_t control_token = 0;
};

struct dispatcher_state {
  static inline const char* name = "trellis.dispatcher";

  dispatcher_config cfg;
  std::unordered_map<std::string, active_workflow> active;
  /// Cached workflows that may be evicted (none pinned by a due message),
  /// least recently used first, and the node count of every cached one.
  std::list<std::string> lru;
  std::size_t cached_nodes = 0;
  /// Unfinished workflows whose graphs were evicted (state only in the store).
  std::unordered_set<std::string> evicted;
  std::uint64_t next_incarnation = 1;
  /// The largest task message the transport carries and a worker decodes,
  /// read once per batch (the broker's limit can change on reconnect).
  std::size_t message_limit = SIZE_MAX;
  std::vector<std::string> restored;
  std::mt19937_64 rng;

  // The open batch: what becomes visible only after its commit.
  bool in_batch = false;
  std::size_t batch_changes = 0;
  std::map<std::string, std::vector<outgoing_task>> outbox;
  /// Non-zero while a large submission whose workflow row is committed
  /// dispatches its first tasks: each queue's outbox is published as soon
  /// as it holds this many (see `submit`).
  std::size_t publish_early_every = 0;
  /// True while a restore dispatches: every task it publishes may be out
  /// already (see `restore`).
  bool republishing = false;
  /// Ids of the task messages a restore scheduled for their due time (a
  /// retry, a countdown): the time may have come before the restart, and
  /// the message gone out then, so on_due publishes them as republished.
  std::unordered_set<std::string> republish_when_due;
  /// Ids of tasks a restore found out already (`transport::work_already_out`):
  /// queued, in a worker's hands, or with an outcome waiting. Published
  /// again they would run twice, so the restore leaves them to the broker.
  std::unordered_set<std::string> already_out;
  std::vector<pending_reply> replies;
  std::vector<workflow_outcome> finished;
  std::vector<std::uint64_t> events_to_ack;
  /// Broker handles of lost task messages recorded in this batch.
  std::vector<std::uint64_t> lost_to_discard;
  /// The transport token of the submission being handled (0: none).
  std::uint64_t submission_token = 0;
  /// The transport token of the control request being handled (0: none).
  std::uint64_t control_token = 0;
  /// Control answers that may be sent only after the commit: token, reply.
  std::vector<std::pair<std::uint64_t, std::string>> control_answers;
  /// Workflows revoked in this batch, announced after the commit.
  std::vector<std::string> revoked;
  /// Read-only control requests that arrived while a batch was open: they
  /// are answered after its commit, so an answer never shows state that a
  /// crash could still take back.
  std::vector<std::pair<std::string, std::uint64_t>> deferred_controls;

  // Committed task messages the transport has not taken yet (broker away),
  // by queue, in the lists they were first handed over in. A list the broker
  // refused is tried again as it was, never merged with later messages: the
  // same list makes the same packs under the same message ids, so whatever
  // of it did land before the error is dropped by the broker's dedup
  // instead of running twice.
  struct unsent_list {
    std::vector<outgoing_task> tasks;
    bool attempted = false;
  };
  std::map<std::string, std::deque<unsent_list>> unsent;
  bool republish_scheduled = false;
  std::chrono::milliseconds republish_backoff{100};
};

using dispatcher_pointer = dispatcher_actor::stateful_pointer<dispatcher_state>;

/// Everything the dispatcher does, as methods over its state and self pointer.
class dispatcher_logic {
 public:
  explicit dispatcher_logic(dispatcher_pointer self) : self_(self), st_(self->state) {}

  void restore_all();
  caf::result<std::string> submit(const std::string& bytes);
  void submit_from_bus(const std::string& bytes, std::uint64_t token);
  void on_events(std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens);
  void on_due(const std::string& wf, std::int32_t node, std::int32_t attempt, std::uint64_t incarnation);
  void on_lost(const std::string& bytes, std::int32_t deliveries, std::uint64_t handle);
  void pass_lost(std::uint64_t handle);
  caf::result<std::string> status(const std::string& wf);
  caf::result<std::string> replay(std::int64_t dead_letter_id);
  void control(const std::string& bytes, std::uint64_t token);
  void flush();
  /// Drops least recently used idle graphs while the cache holds more than
  /// `max_cached_nodes`, after a commit. `keep_newest` spares the most
  /// recently used one: the workflow a message is being handled for, when a
  /// full batch commits in the middle of it.
  void evict_idle(bool keep_newest = false);

 private:
  void publish_unsent();
  void answer_after_commit(std::uint64_t token, std::string reply);
  void control_status(const std::string& wf, std::uint64_t token);
  void control_dlq_list(std::uint64_t token);
  void control_dlq_replay(std::int64_t letter, std::uint64_t token);
  void control_revoke(const std::string& wf, std::uint64_t token);
  void control_inspect(std::uint64_t token);
  void open_batch();
  void changed(std::size_t n = 1);
  void on_event(const std::string& raw);
  void check(const expected<void>& r);
  template <class T>
  T check(expected<T> r);

  void restore(const workflow_record& rec);
  /// A workflow's graph cached and started from its stored node rows (the
  /// restore replay), with the leaves that came out ready and the rows.
  struct replayed_graph {
    active_workflow& aw;
    graph_effects fx;
    std::unordered_map<node_id, node_record> rows;
  };
  replayed_graph replay_stored(const std::string& wf, canvas c);
  active_workflow& cache(const std::string& wf, canvas c);
  void uncache(const std::string& wf);
  active_workflow* find_active(const std::string& wf);
  active_workflow* rebuild(const std::string& wf);
  void process(const std::string& wf, active_workflow& aw, graph_effects& fx);
  void ready(const std::string& wf, active_workflow& aw, node_id leaf, graph_effects& fx);
  void dispatch(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt, graph_effects& fx);
  void fail_oversized(const std::string& wf, active_workflow& aw, const envelope& task, const std::string& bytes,
                      std::size_t limit, graph_effects& fx);
  void schedule(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt, epoch_ms due_at);
  void apply_outcome(const envelope& env, const std::string& raw, const std::string* lost_task = nullptr);
  void dead_letter(const std::string& reason, const std::string& error_text, const std::string& bytes,
                   const std::string& message_id, const std::string& wf, std::int32_t node, const std::string& task,
                   std::int32_t attempts);
  envelope task_envelope(const std::string& wf, const active_workflow& aw, node_id leaf, std::int32_t attempt) const;
  const task_defaults& defaults_of(const std::string& task) const;
  std::string queue_of(const signature& sig) const;
  retry_policy policy_of(const signature& sig) const;

  dispatcher_pointer self_;
  dispatcher_state& st_;
};

const task_defaults& dispatcher_logic::defaults_of(const std::string& task) const {
  static const task_defaults fallback{};
  auto i = st_.cfg.defaults.find(task);
  return i == st_.cfg.defaults.end() ? fallback : i->second;
}

std::string dispatcher_logic::queue_of(const signature& sig) const {
  return sig.options().queue ? *sig.options().queue : defaults_of(sig.task()).queue;
}

retry_policy dispatcher_logic::policy_of(const signature& sig) const {
  return sig.options().retry ? *sig.options().retry : defaults_of(sig.task()).retry;
}

void dispatcher_logic::check(const expected<void>& r) {
  if (!r) {
    // A store that cannot write leaves memory ahead of disk: nothing more
    // may be published or acked. The actor stops with the failure as its
    // exit reason (see the exception handler in `dispatcher`).
    throw store_failure{r.error()};
  }
}

template <class T>
T dispatcher_logic::check(expected<T> r) {
  if (!r) {
    throw store_failure{r.error()};
  }
  return std::move(*r);
}

void dispatcher_logic::open_batch() {
  if (st_.in_batch) {
    return;
  }
  check(st_.cfg.store->begin());
  st_.in_batch = true;
  st_.batch_changes = 0;
  st_.message_limit = std::min(st_.cfg.bus->max_message_bytes(), envelope_limits{}.max_bytes);
  self_->send(self_, flush_atom::value);
}

void dispatcher_logic::changed(std::size_t n) {
  st_.batch_changes += n;
  if (st_.batch_changes >= st_.cfg.max_batch) {
    // Bound the batch: commit now, keep going in a new one. The flush message
    // already queued then finds nothing (or a fresh batch) to commit.
    flush();
    evict_idle(true);
    open_batch();
  }
}

void dispatcher_logic::flush() {
  if (st_.in_batch) {
    check(st_.cfg.store->commit());
    st_.in_batch = false;
    st_.batch_changes = 0;
    // Only now is everything durable: publish, ack, answer, notify.
    for (auto& [queue, messages] : st_.outbox) {
      if (!messages.empty()) {
        st_.unsent[queue].push_back({std::move(messages), false});
      }
    }
    st_.outbox.clear();
    for (auto token : st_.events_to_ack) {
      st_.cfg.bus->ack_event(delivery{{}, token, 1});
    }
    st_.events_to_ack.clear();
    for (auto handle : st_.lost_to_discard) {
      if (st_.cfg.discard_lost_task) {
        st_.cfg.discard_lost_task(handle);
      }
    }
    st_.lost_to_discard.clear();
    for (auto& r : st_.replies) {
      if (r.submission_token != 0) {
        st_.cfg.bus->answer_submission(delivery{{}, r.submission_token, 1},
                                       pack_to_string(value(value::map{{"id", r.workflow_id}})));
      }
      if (r.control_token != 0) {
        st_.cfg.bus->answer_control(delivery{{}, r.control_token, 1},
                                    encode_control_reply(value(value::map{{"id", r.workflow_id}})));
      }
      r.promise.deliver(std::move(r.workflow_id));
    }
    st_.replies.clear();
    auto revoked = std::move(st_.revoked);
    st_.revoked.clear();
    for (const auto& wf : revoked) {
      if (st_.cfg.on_revoked) {
        st_.cfg.on_revoked(wf);
      }
    }
    auto finished = std::move(st_.finished);
    st_.finished.clear();
    for (auto& f : finished) {
      st_.cfg.stats->add(counter::workflows_finished, "", "");
      if (st_.cfg.on_finished) {
        st_.cfg.on_finished(f);
      }
    }
    // Last, so that a client told "revoked" knows the workers were told and
    // the done notice is out.
    for (auto& [token, reply] : st_.control_answers) {
      st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
    }
    st_.control_answers.clear();
  }
  publish_unsent();
  // Reads that waited for this commit. Answering one never opens a batch.
  auto deferred = std::move(st_.deferred_controls);
  st_.deferred_controls.clear();
  for (auto& [bytes, token] : deferred) {
    control(bytes, token);
  }
}

void dispatcher_logic::publish_unsent() {
  auto now = std::chrono::steady_clock::now();
  for (auto i = st_.unsent.begin(); i != st_.unsent.end();) {
    auto& [queue, lists] = *i;
    while (!lists.empty()) {
      auto& list = lists.front();
      auto n = list.tasks.size();
      std::vector<std::chrono::steady_clock::time_point> ready;
      ready.reserve(n);
      for (const auto& m : list.tasks) {
        ready.push_back(m.ready_at);
      }
      list.attempted = true;
      if (auto r = st_.cfg.bus->publish_tasks(queue, list.tasks); !r) {
        // The broker is away. The committed rows already say these nodes
        // are ready, so nothing is lost; try again with backoff (this list
        // first, unchanged), and a restart would publish them from the
        // store anyway.
        if (!st_.republish_scheduled) {
          st_.republish_scheduled = true;
          self_->delayed_send(self_, st_.republish_backoff, flush_atom::value);
          st_.republish_backoff = std::min(st_.republish_backoff * 2, std::chrono::milliseconds{5000});
        }
        break;
      }
      for (auto t : ready) {
        st_.cfg.stats->observe(histogram::publish_latency, queue, "", std::chrono::duration<double>(now - t).count());
      }
      st_.cfg.stats->add(counter::tasks_published, queue, "", n);
      st_.republish_backoff = std::chrono::milliseconds{100};
      lists.pop_front();
    }
    i = lists.empty() ? st_.unsent.erase(i) : std::next(i);
  }
  if (st_.unsent.empty()) {
    st_.republish_scheduled = false;
  }
}

envelope dispatcher_logic::task_envelope(const std::string& wf, const active_workflow& aw, node_id leaf,
                                         std::int32_t attempt) const {
  const auto& n = aw.graph.node(leaf);
  const auto& sig = *n.sig;
  envelope e;
  e.type = envelope_type::task;
  e.id = wf + ":" + std::to_string(leaf) + ":" + std::to_string(attempt);
  e.workflow_id = wf;
  e.node = leaf;
  e.attempt = attempt;
  e.task = sig.task();
  e.queue = queue_of(sig);
  e.args = aw.graph.arguments_of(leaf);
  e.kwargs = sig.kwargs();
  e.options["idempotency_key"] = sig.options().idempotency_key ? *sig.options().idempotency_key
                                                               : wf + "/" + std::to_string(leaf);
  auto limit = sig.options().time_limit ? sig.options().time_limit : defaults_of(sig.task()).time_limit;
  if (limit) {
    e.options["time_limit_ms"] = static_cast<std::int64_t>(limit->count());
  }
  e.sent_at = now_ms();
  if (sig.options().expires) {
    // Measured from publication of this attempt; the worker revokes it if it
    // has not started by then.
    e.options["expires_at_ms"] = e.sent_at + static_cast<std::int64_t>(sig.options().expires->count());
  }
  return e;
}

void dispatcher_logic::dispatch(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt,
                                graph_effects& fx) {
  aw.graph.mark_dispatched(leaf, attempt);
  if (st_.republishing && !st_.already_out.empty() &&
      st_.already_out.erase(wf + ":" + std::to_string(leaf) + ":" + std::to_string(attempt)) > 0) {
    return;  // its first copy is still out: it runs, or ran, from there
  }
  auto e = task_envelope(wf, aw, leaf, attempt);
  auto bytes = encode(e);
  if (bytes.size() > st_.message_limit) {
    fail_oversized(wf, aw, e, bytes, st_.message_limit, fx);
    return;
  }
  auto priority = aw.graph.node(leaf).sig->options().priority.value_or(0);
  auto& box = st_.outbox[e.queue];
  box.push_back(outgoing_task{e.id, std::move(bytes), priority, std::chrono::steady_clock::now(), st_.republishing});
  if (st_.publish_early_every != 0 && box.size() >= st_.publish_early_every) {
    st_.unsent[e.queue].push_back({std::move(box), false});
    box.clear();
    publish_unsent();
  }
}

void dispatcher_logic::fail_oversized(const std::string& wf, active_workflow& aw, const envelope& task,
                                      const std::string& bytes, std::size_t limit, graph_effects& fx) {
  // Published, it would be refused on every try and hold up its queue; and
  // the same inputs make the same message on every attempt. So the step
  // fails at once, without retry, as a handler's rejection does (a chord
  // body whose header results add up past the limit gets here).
  std::string type{to_string(errc::payload_too_large)};
  auto message = "the task message of " + task.task + " is " + std::to_string(bytes.size()) +
                 " bytes encoded, beyond the " + std::to_string(limit) +
                 " bytes one message may carry; pass a reference to large data (a key, a path, a URL) instead";
  auto err = error_value(type, message);
  const auto& n = aw.graph.node(task.node);
  check(st_.cfg.store->upsert_node(row_of(wf, task.node, n, node_state::failure, value{}, err, 0, now_ms())));
  changed();
  dead_letter(type, type + ": " + message, bytes, task.id, wf, task.node, task.task, task.attempt);
  aw.graph.fail(task.node, task.attempt, err, fx);
  st_.cfg.stats->add(counter::tasks_failed, task.queue, task.task);
}

void dispatcher_logic::schedule(const std::string& wf, active_workflow& aw, node_id leaf, std::int32_t attempt,
                                epoch_ms due_at) {
  if (aw.timers++ == 0) {
    st_.lru.erase(aw.lru);  // pinned until its last due message comes
  }
  auto delay = std::chrono::milliseconds{std::max<epoch_ms>(0, due_at - now_ms())};
  self_->delayed_send(self_, delay, due_atom::value, wf, leaf, attempt, aw.incarnation);
}

void dispatcher_logic::ready(const std::string& wf, active_workflow& aw, node_id leaf, graph_effects& fx) {
  const auto& n = aw.graph.node(leaf);
  const auto& sig = *n.sig;
  if (sig.options().idempotency_key) {
    // A step whose key already succeeded returns the stored result without
    // running. The lookup sees this batch's own uncommitted writes too.
    if (auto stored = check(st_.cfg.store->find_idempotency_key(*sig.options().idempotency_key)); stored) {
      aw.graph.succeed(leaf, n.attempt, *stored, fx);
      check(st_.cfg.store->upsert_node(row_of(wf, leaf, n, node_state::success, *stored, value{}, 0, now_ms())));
      changed();
      st_.cfg.stats->add(counter::idempotent_hits, queue_of(sig), sig.task());
      return;
    }
  }
  if (n.attempt == 0 && sig.options().countdown && sig.options().countdown->count() > 0) {
    // The countdown is a row with a due time, so a crash does not lose it.
    auto due = now_ms() + sig.options().countdown->count();
    check(st_.cfg.store->upsert_node(row_of(wf, leaf, n, node_state::received, value{}, value{}, due, now_ms())));
    changed();
    schedule(wf, aw, leaf, 1, due);
    return;
  }
  dispatch(wf, aw, leaf, n.attempt + 1, fx);
}

void dispatcher_logic::process(const std::string& wf, active_workflow& aw, graph_effects& fx) {
  // `ready` may complete nodes (idempotency hits) and so append to fx.ready.
  for (std::size_t i = 0; i < fx.ready.size(); ++i) {
    ready(wf, aw, fx.ready[i], fx);
  }
  if (fx.finished) {
    const auto& root = aw.graph.root();
    check(st_.cfg.store->finish_workflow(wf, root.state, root.result, root.error, now_ms()));
    changed();
    st_.finished.push_back(workflow_outcome{wf, root.state, root.result, root.error});
    uncache(wf);  // `aw` dies here; callers must not touch it after process()
  }
}

void dispatcher_logic::restore(const workflow_record& rec) {
  auto parsed = canvas_from_value(rec.canvas, st_.cfg.limits);
  if (!parsed) {
    // Stored by an older build under other limits, or damaged: fail it loudly
    // rather than guess.
    auto err = error_value("store_corrupt", "stored canvas does not parse: " + parsed.error().message());
    check(st_.cfg.store->finish_workflow(rec.id, node_state::failure, value{}, err, now_ms()));
    changed();
    st_.finished.push_back(workflow_outcome{rec.id, node_state::failure, value{}, err});
    return;
  }
  st_.evicted.erase(rec.id);
  auto replayed = replay_stored(rec.id, std::move(*parsed));
  auto& aw = replayed.aw;
  auto& fx = replayed.fx;
  const auto& by_node = replayed.rows;
  // Ready leaves with a pending retry or countdown wait for their due time;
  // the others are published again (at least once; duplicates are harmless).
  std::vector<node_id> now;
  for (auto leaf : fx.ready) {
    auto row = by_node.find(leaf);
    if (row != by_node.end() && row->second.due_at > 0 && !is_terminal(row->second.state)) {
      schedule(rec.id, aw, leaf, row->second.attempt + 1, row->second.due_at);
      st_.republish_when_due.insert(rec.id + ":" + std::to_string(leaf) + ":" +
                                    std::to_string(row->second.attempt + 1));  // task_envelope's id
    } else {
      now.push_back(leaf);
    }
  }
  fx.ready = std::move(now);
  auto published = fx.ready.size();
  // Most of these tasks went out before the restart and may still be queued
  // or have run already (an outcome not committed yet). Those the broker
  // still holds, as a task or as an outcome, are left to it (`already_out`,
  // read by restore_all). The rest go out marked republished: one message
  // each under the task's own id, the id their first copy had when it went
  // alone, so that the broker drops them within its dedup window. Should a
  // copy still meet its first (the broker could not be read), the worker
  // pool runs one when both meet in one worker (task_claims in
  // worker_pool.cpp), and the once-only guard keeps the state right.
  st_.republishing = true;
  process(rec.id, aw, fx);
  st_.republishing = false;
  // Encoded task messages wait in the outbox until the commit: counting them
  // bounds a batch of many large workflows (a restart restoring a million
  // queued tasks) as well as one of many small changes.
  changed(published);
}

dispatcher_logic::replayed_graph dispatcher_logic::replay_stored(const std::string& wf, canvas c) {
  std::unordered_map<node_id, node_record> rows;
  for (auto& r : check(st_.cfg.store->nodes_of(wf))) {
    rows.emplace(r.node, std::move(r));
  }
  auto& aw = cache(wf, std::move(c));
  auto fx = aw.graph.start([&](node_id id) -> std::optional<known_outcome> {
    auto row = rows.find(id);
    if (row == rows.end()) {
      return std::nullopt;
    }
    const auto& r = row->second;
    return known_outcome{r.state, r.attempt, r.result, r.error, r.retry_base};
  });
  return replayed_graph{aw, std::move(fx), std::move(rows)};
}

active_workflow& dispatcher_logic::cache(const std::string& wf, canvas c) {
  auto [it, inserted] = st_.active.try_emplace(wf, std::move(c));
  auto& aw = it->second;
  if (inserted) {
    aw.incarnation = st_.next_incarnation++;
    aw.lru = st_.lru.insert(st_.lru.end(), wf);
    st_.cached_nodes += aw.graph.size();
  }
  return aw;
}

void dispatcher_logic::uncache(const std::string& wf) {
  auto it = st_.active.find(wf);
  if (it == st_.active.end()) {
    return;
  }
  if (it->second.timers == 0) {
    st_.lru.erase(it->second.lru);
  }
  st_.cached_nodes -= it->second.graph.size();
  st_.active.erase(it);
}

active_workflow* dispatcher_logic::find_active(const std::string& wf) {
  if (auto it = st_.active.find(wf); it != st_.active.end()) {
    if (it->second.timers == 0) {
      st_.lru.splice(st_.lru.end(), st_.lru, it->second.lru);  // most recently used now
    }
    return &it->second;
  }
  return st_.evicted.count(wf) != 0 ? rebuild(wf) : nullptr;
}

active_workflow* dispatcher_logic::rebuild(const std::string& wf) {
  st_.evicted.erase(wf);
  st_.cfg.stats->add(counter::graph_rebuilds, "", "");
  auto rec = check(st_.cfg.store->find_workflow(wf));
  if (!rec || is_terminal(rec->state)) {
    return nullptr;
  }
  auto parsed = canvas_from_value(rec->canvas, st_.cfg.limits);
  if (!parsed) {
    // It parsed when it was cached; only a damaged store gets here. Restore
    // fails it loudly, as at startup.
    open_batch();
    restore(*rec);
    return nullptr;
  }
  auto replayed = replay_stored(wf, std::move(*parsed));
  auto& aw = replayed.aw;
  const auto& by_node = replayed.rows;
  // Unlike a restart, nothing is published again: the graph was evicted
  // with no unsent message and no due time pending, so every leaf that is
  // ready now was dispatched already, as the attempt after its stored row's
  // (the first when it has none). That keeps the once-only guard exact.
  for (auto leaf : replayed.fx.ready) {
    auto row = by_node.find(leaf);
    aw.graph.mark_dispatched(leaf, row == by_node.end() ? 1 : row->second.attempt + 1);
  }
  return &aw;
}

void dispatcher_logic::evict_idle(bool keep_newest) {
  // Only a committed, fully published state may be dropped: then the store
  // holds all of it. Messages the broker refused keep every graph cached.
  if (st_.in_batch || st_.cached_nodes <= st_.cfg.max_cached_nodes || !st_.unsent.empty()) {
    return;
  }
  auto end = keep_newest && !st_.lru.empty() ? std::prev(st_.lru.end()) : st_.lru.end();
  for (auto i = st_.lru.begin(); i != end && st_.cached_nodes > st_.cfg.max_cached_nodes;) {
    auto& wf = *i++;
    auto it = st_.active.find(wf);  // unpinned: no due message pending
    auto id = wf;
    st_.cached_nodes -= it->second.graph.size();
    st_.active.erase(it);
    st_.lru.erase(std::prev(i));
    st_.evicted.insert(std::move(id));
    st_.cfg.stats->add(counter::graph_evictions, "", "");
  }
}

void dispatcher_logic::restore_all() {
  auto unfinished = check(st_.cfg.store->unfinished_workflows());
  if (unfinished.empty()) {
    return;
  }
  // What the broker still holds is not published again. Without an answer
  // (the broker is away) everything ready is: a task may then run twice,
  // but none is lost.
  if (auto out = st_.cfg.bus->work_already_out(st_.cfg.partition)) {
    st_.already_out = std::move(*out);
  }
  open_batch();
  for (const auto& rec : unfinished) {
    st_.restored.push_back(rec.id);
    restore(rec);
  }
  // Kept only for the attempts due later, which on_due publishes then.
  for (auto i = st_.already_out.begin(); i != st_.already_out.end();) {
    i = st_.republish_when_due.count(*i) != 0 ? std::next(i) : st_.already_out.erase(i);
  }
}

caf::result<std::string> dispatcher_logic::submit(const std::string& bytes) {
  auto env = decode(bytes);
  if (!env) {
    return to_caf_error(env.error());
  }
  if (env->type != envelope_type::submit) {
    return to_caf_error(error{errc::malformed_envelope, std::string{"expected a submit envelope, got "} +
                                                            to_string(env->type)});
  }
  if (auto owner = partition_of(env->workflow_id, st_.cfg.partitions); owner != st_.cfg.partition) {
    return to_caf_error(error{errc::invalid_config,
                              "workflow " + env->workflow_id + " belongs to partition " + std::to_string(owner) +
                                  " of " + std::to_string(st_.cfg.partitions) +
                                  ", not to this dispatcher's partition " + std::to_string(st_.cfg.partition) +
                                  "; the client and the dispatchers must use the same --partitions"});
  }
  auto parsed = canvas_from_value(env->payload, st_.cfg.limits);
  if (!parsed) {
    return to_caf_error(parsed.error());
  }
  // A workflow already held is answered with its id, and only once it is
  // committed: it may have come in the open batch (a client re-sending a
  // request whose answer is late), and an answer must never promise what a
  // crash could still undo.
  auto known = [&](std::string id) -> caf::result<std::string> {
    if (!st_.in_batch) {
      return id;
    }
    auto promise = self_->make_response_promise<std::string>();
    st_.replies.push_back(pending_reply{promise, std::move(id), st_.submission_token});
    return promise;
  };
  std::optional<std::string> key;
  if (auto k = env->options.find("submit_key"); k != env->options.end() && k->second.is_string()) {
    key = k->second.as_string();
    // Same key, same workflow: the first submission wins.
    if (auto existing = check(st_.cfg.store->find_workflow_by_key(*key)); existing) {
      return known(existing->id);
    }
  }
  if (st_.active.count(env->workflow_id) != 0 || check(st_.cfg.store->find_workflow(env->workflow_id))) {
    return known(env->workflow_id);  // a re-sent submission of a workflow we already hold
  }
  open_batch();
  workflow_record rec;
  rec.id = env->workflow_id;
  rec.submit_key = key;
  rec.state = node_state::started;
  rec.canvas = std::move(env->payload);  // parsed above; the envelope needs it no more
  rec.created_at = now_ms();
  check(st_.cfg.store->insert_workflow(rec));
  changed();
  st_.cfg.stats->add(counter::workflows_submitted, "", "");
  auto& aw = cache(rec.id, std::move(*parsed));
  auto fx = aw.graph.start();
  auto promise = self_->make_response_promise<std::string>();
  st_.replies.push_back(pending_reply{promise, rec.id, st_.submission_token});
  if (fx.ready.size() >= publish_early_chunk) {
    // A large workflow: commit its row now, so that it is durable (a
    // restore publishes every ready node again) and the submitter can be
    // answered, and publish its first tasks in chunks while the rest are
    // still being encoded, so workers start early. What this batch held
    // before is committed and published too.
    flush();
    open_batch();
    st_.publish_early_every = publish_early_chunk;
  }
  auto published = fx.ready.size();
  process(rec.id, aw, fx);
  st_.publish_early_every = 0;
  changed(published);  // the outbox's size bounds a batch too (see restore)
  return promise;
}

void dispatcher_logic::submit_from_bus(const std::string& bytes, std::uint64_t token) {
  st_.submission_token = token;  // picked up by submit() when its reply waits for the commit
  auto r = submit(bytes);
  st_.submission_token = 0;
  if (r.flag == caf::rt_value && r.value.match_elements<std::string>()) {
    // Known already (a re-sent submission or a seen submit key): answer now.
    st_.cfg.bus->answer_submission(delivery{{}, token, 1},
                                   pack_to_string(value(value::map{{"id", r.value.get_as<std::string>(0)}})));
  } else if (r.flag == caf::rt_error) {
    auto e = from_caf_error(r.err, to_string(r.err));
    value::map err{{"type", std::string{to_string(e.code())}}, {"message", e.message()}};
    st_.cfg.bus->answer_submission(delivery{{}, token, 1},
                                   pack_to_string(value(value::map{{"error", std::move(err)}})));
  }
}

void dispatcher_logic::dead_letter(const std::string& reason, const std::string& error_text,
                                   const std::string& bytes, const std::string& message_id, const std::string& wf,
                                   std::int32_t node, const std::string& task, std::int32_t attempts) {
  open_batch();
  dead_letter_record d;
  d.message_id = message_id;
  d.workflow_id = wf;
  d.node = node;
  d.task = task;
  d.reason = reason;
  d.error = error_text;
  d.attempts = attempts;
  d.envelope = bytes;
  d.created_at = now_ms();
  check(st_.cfg.store->insert_dead_letter(d));
  changed();
  st_.cfg.stats->add(counter::dead_letters, "", task);
}

void dispatcher_logic::apply_outcome(const envelope& env, const std::string& raw, const std::string* lost_task) {
  if (env.status == outcome_status::rejected && env.node < 0) {
    // The worker could not read the task message at all: keep its bytes.
    std::string original = env.payload.is_binary()
                               ? std::string(env.payload.as_binary().bytes.begin(), env.payload.as_binary().bytes.end())
                               : raw;
    dead_letter(env.error_type, env.error_message, original, "", "", -1, env.task, 1);
    return;
  }
  auto* cached = find_active(env.workflow_id);
  if (cached == nullptr && event_partition_of(env.workflow_id, st_.cfg.partitions) != st_.cfg.partition) {
    // A worker with another partition count sent it here; its owner never
    // sees it, so keep it where an operator will.
    dead_letter("wrong_partition",
                "outcome of workflow " + env.workflow_id + " (partition " +
                    std::to_string(event_partition_of(env.workflow_id, st_.cfg.partitions)) + " of " +
                    std::to_string(st_.cfg.partitions) + ") arrived at partition " + std::to_string(st_.cfg.partition) +
                    "; every process of the namespace must use the same --partitions",
                raw, env.id, env.workflow_id, env.node, env.task, env.attempt);
    return;
  }
  if (cached == nullptr) {
    // The workflow already finished: a redelivered outcome changes nothing.
    st_.cfg.stats->add(counter::duplicates, "", env.task);
    return;
  }
  auto& aw = *cached;
  if (env.node < 0 || static_cast<std::size_t>(env.node) >= aw.graph.size() ||
      aw.graph.node(env.node).kind != canvas::kind::task) {
    dead_letter("malformed_envelope", "outcome names node " + std::to_string(env.node) + " which workflow " +
                                          env.workflow_id + " does not have",
                raw, env.id, env.workflow_id, env.node, env.task, env.attempt);
    return;
  }
  const auto& n = aw.graph.node(env.node);
  const auto& sig = *n.sig;
  auto queue = queue_of(sig);
  graph_effects fx;
  open_batch();
  switch (env.status) {
    case outcome_status::success: {
      if (aw.graph.succeed(env.node, env.attempt, env.payload, fx) != apply_result::applied) {
        st_.cfg.stats->add(counter::duplicates, queue, sig.task());
        return;
      }
      check(st_.cfg.store->upsert_node(
          row_of(env.workflow_id, env.node, n, node_state::success, env.payload, value{}, 0, now_ms())));
      if (sig.options().idempotency_key) {
        check(st_.cfg.store->put_idempotency_key(*sig.options().idempotency_key, env.payload, env.workflow_id,
                                                 env.node, now_ms()));
      }
      changed();
      st_.cfg.stats->add(counter::tasks_succeeded, queue, sig.task());
      st_.cfg.stats->observe(histogram::handler_duration, queue, sig.task(),
                             static_cast<double>(env.duration_us) / 1e6);
      break;
    }
    case outcome_status::failure:
    case outcome_status::retry:
    case outcome_status::rejected: {
      // A repeat of a failure already turned into a scheduled retry is a
      // duplicate too: it must not schedule (or count) the retry twice.
      if (n.attempt != env.attempt || is_terminal(n.state) || n.state == node_state::retry) {
        st_.cfg.stats->add(counter::duplicates, queue, sig.task());
        return;
      }
      check(st_.cfg.store->insert_attempt(
          attempt_record{env.workflow_id, env.node, env.attempt, env.error_type, env.error_message, now_ms()}));
      st_.cfg.stats->observe(histogram::handler_duration, queue, sig.task(),
                             static_cast<double>(env.duration_us) / 1e6);
      auto policy = policy_of(sig);
      bool retryable = env.status != outcome_status::rejected;
      // The budget counts from the last replay, not from the first attempt ever.
      auto used = env.attempt - n.retry_base;
      if (retryable && used <= policy.max_retries) {
        std::uniform_real_distribution<double> unit{0.0, 1.0};
        auto delay = policy.delay_before(used, unit(st_.rng));
        if (env.status == outcome_status::retry && env.payload.is_integer()) {
          delay = std::chrono::milliseconds{env.payload.as_int()};  // ctx.retry_later(reason, countdown)
        }
        aw.graph.schedule_retry(env.node, env.attempt);
        auto due = now_ms() + delay.count();
        check(st_.cfg.store->upsert_node(row_of(env.workflow_id, env.node, n, node_state::retry, value{},
                                                error_value(env.error_type, env.error_message), due, now_ms())));
        changed();
        schedule(env.workflow_id, aw, env.node, env.attempt + 1, due);
        st_.cfg.stats->add(counter::retries, queue, sig.task());
        return;
      }
      auto type = env.status == outcome_status::retry ? std::string{"max_retries_exceeded"} : env.error_type;
      auto err = error_value(type, env.error_message);
      check(st_.cfg.store->upsert_node(
          row_of(env.workflow_id, env.node, n, node_state::failure, value{}, err, 0, now_ms())));
      changed();
      auto reason = env.status == outcome_status::rejected ? env.error_type : std::string{"task_failed"};
      // The dead letter keeps the task message itself (what a replay re-runs),
      // rebuilt exactly as it was published for this attempt; a lost task
      // keeps the bytes the broker gave back.
      auto task_msg = task_envelope(env.workflow_id, aw, env.node, env.attempt);
      if (lost_task != nullptr) {
        reason = "worker lost";
      }
      dead_letter(reason, type + ": " + env.error_message, lost_task != nullptr ? *lost_task : encode(task_msg),
                  task_msg.id, env.workflow_id, env.node, sig.task(), env.attempt);
      aw.graph.fail(env.node, env.attempt, err, fx);
      st_.cfg.stats->add(counter::tasks_failed, queue, sig.task());
      break;
    }
  }
  process(env.workflow_id, aw, fx);
}

void dispatcher_logic::on_events(std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens) {
  // Even a batch of duplicates needs a commit point: its events are acked
  // to the transport only after it.
  open_batch();
  st_.events_to_ack.insert(st_.events_to_ack.end(), tokens.begin(), tokens.end());
  for (auto& raw : batch) {
    try {
      on_event(raw);
    } catch (const store_failure&) {
      throw;  // not this event's fault: the dispatcher stops
    } catch (const std::exception& e) {
      // A defect met while applying this one event: keep the event where an
      // operator sees it rather than let it stop (and, redelivered, stop
      // again) the dispatcher.
      dead_letter("internal_error", std::string{"applying this event failed: "} + e.what(), raw, "", "", -1, "", 1);
    }
  }
}

void dispatcher_logic::on_event(const std::string& raw) {
  {
    auto env = decode(raw);
    if (!env) {
      dead_letter(to_string(env.error().code()), env.error().message(), raw, "", "", -1, "", 1);
      return;
    }
    if (env->type != envelope_type::outcome) {
      dead_letter("malformed_envelope",
                  std::string{"expected an outcome on the event stream, got "} + to_string(env->type), raw,
                  env->id, env->workflow_id, env->node, env->task, env->attempt);
      return;
    }
    apply_outcome(*env, raw);
  }
}

void dispatcher_logic::on_due(const std::string& wf, std::int32_t node, std::int32_t attempt,
                              std::uint64_t incarnation) {
  bool may_be_out = st_.republish_when_due.erase(wf + ":" + std::to_string(node) + ":" + std::to_string(attempt)) > 0;
  // A graph with a pending due message is never evicted, so one that is not
  // cached (or cached anew since) makes this message stale: its workflow
  // finished, was revoked, or was replayed and scheduled its own again.
  auto it = st_.active.find(wf);
  if (it == st_.active.end() || it->second.incarnation != incarnation) {
    return;
  }
  auto* aw = &it->second;
  if (--aw->timers == 0) {
    aw->lru = st_.lru.insert(st_.lru.end(), wf);  // unpinned, most recently used
  }
  const auto& n = aw->graph.node(node);
  // Only the attempt that was scheduled may start; anything else is stale.
  if (is_terminal(n.state) || n.attempt != attempt - 1) {
    return;
  }
  open_batch();
  graph_effects fx;
  st_.republishing = may_be_out;
  dispatch(wf, *aw, node, attempt, fx);
  st_.republishing = false;
  process(wf, *aw, fx);  // an oversized task message failed its step
}

void dispatcher_logic::pass_lost(std::uint64_t handle) {
  if (st_.cfg.pass_lost_task) {
    st_.cfg.pass_lost_task(handle);
  }
}

void dispatcher_logic::on_lost(const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
  auto env = decode(bytes);
  auto what = "delivered " + std::to_string(deliveries) +
              " times and never acknowledged: the worker running it died (or hung past AckWait) every time";
  if (!env || env->type != envelope_type::task) {
    // It names no workflow; partition 0's owner keeps it, as for any
    // unreadable task message.
    if (st_.cfg.partition != 0) {
      pass_lost(handle);
      return;
    }
    auto why = env ? std::string{"; it is not a task message"} : "; it is unreadable: " + env.error().message();
    dead_letter("worker lost", what + why, bytes, "", "", -1, "", deliveries);
    st_.lost_to_discard.push_back(handle);
    return;
  }
  if (partition_of(env->workflow_id, st_.cfg.partitions) != st_.cfg.partition) {
    pass_lost(handle);  // another dispatcher's workflow: its owner hears the same advisory
    return;
  }
  // The lost delivery becomes the failure of its attempt, so the retry
  // policy decides what follows, as for any failure. A stale one (the node
  // moved on) is a duplicate and only dropped from the broker.
  open_batch();
  st_.lost_to_discard.push_back(handle);
  envelope failure;
  failure.type = envelope_type::outcome;
  failure.id = env->id;
  failure.workflow_id = env->workflow_id;
  failure.node = env->node;
  failure.attempt = env->attempt;
  failure.task = env->task;
  failure.queue = env->queue;
  failure.status = outcome_status::failure;
  failure.error_type = "worker_lost";
  failure.error_message = "task message " + env->id + " " + what;
  apply_outcome(failure, bytes, &bytes);
}

caf::result<std::string> dispatcher_logic::status(const std::string& wf) {
  value::map out{{"id", wf}};
  if (auto it = st_.active.find(wf); it != st_.active.end()) {
    out["state"] = std::string{to_string(node_state::started)};
    return pack_to_string(value(std::move(out)));
  }
  auto rec = check(st_.cfg.store->find_workflow(wf));
  if (!rec) {
    return to_caf_error(error{errc::not_found, "no workflow with id " + wf});
  }
  out["state"] = std::string{to_string(rec->state)};
  if (is_terminal(rec->state)) {  // an evicted graph's workflow is still running
    out["result"] = rec->result;
    out["error"] = rec->error;
  }
  return pack_to_string(value(std::move(out)));
}

caf::result<std::string> dispatcher_logic::replay(std::int64_t id) {
  auto d = check(st_.cfg.store->find_dead_letter(id));
  if (!d) {
    return to_caf_error(error{errc::not_found, "no dead letter with id " + std::to_string(id)});
  }
  if (d->workflow_id.empty() || d->node < 0) {
    return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) + " (" + d->reason +
                                                          ") belongs to no workflow node; there is nothing to "
                                                          "run again, it stays in the store"});
  }
  auto rec = check(st_.cfg.store->find_workflow(d->workflow_id));
  if (!rec) {
    return to_caf_error(error{errc::not_found, "dead letter " + std::to_string(id) + " names workflow " +
                                                   d->workflow_id + ", which this store does not hold"});
  }
  if (d->replayed_at != 0) {
    return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) +
                                                          " was already replayed; its node has run again since"});
  }
  // Only a node that is still failed can run again: replaying must never
  // reopen a step that has succeeded since.
  std::int32_t last_attempt = d->attempts;
  for (const auto& n : check(st_.cfg.store->nodes_of(d->workflow_id))) {
    if (n.node != d->node) {
      continue;
    }
    if (n.state != node_state::failure) {
      return to_caf_error(error{errc::invalid_workflow, "dead letter " + std::to_string(id) + ": node " +
                                                            std::to_string(n.node) + " of workflow " +
                                                            d->workflow_id + " is " + std::string{to_string(n.state)} +
                                                            ", not FAILURE; there is nothing to replay"});
    }
    last_attempt = std::max(last_attempt, n.attempt);
  }
  open_batch();
  // The node starts over with a fresh retry budget but keeps counting
  // attempts: attempt numbers are message ids (broker dedup, the once-only
  // guard), so a replay must never reuse one. The workflow is restored from
  // its rows, so every composite above the node is derived again.
  node_record row;
  row.workflow_id = d->workflow_id;
  row.node = d->node;
  row.task = d->task;
  row.state = node_state::received;
  row.attempt = last_attempt;
  row.retry_base = last_attempt;
  row.updated_at = now_ms();
  check(st_.cfg.store->upsert_node(row));
  check(st_.cfg.store->reopen_workflow(d->workflow_id));
  check(st_.cfg.store->mark_dead_letter_replayed(id, now_ms()));
  changed();
  uncache(d->workflow_id);
  st_.evicted.erase(d->workflow_id);
  rec->state = node_state::started;
  restore(*rec);
  auto promise = self_->make_response_promise<std::string>();
  st_.replies.push_back(pending_reply{promise, d->workflow_id, 0, st_.control_token});
  return promise;
}

void dispatcher_logic::answer_after_commit(std::uint64_t token, std::string reply) {
  if (st_.in_batch) {
    st_.control_answers.emplace_back(token, std::move(reply));
  } else {
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
  }
}

void dispatcher_logic::control(const std::string& bytes, std::uint64_t token) {
  auto request = decode_control_request(bytes);
  if (!request) {
    // A bad request gets an error answer; it never reaches the store.
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_error(request.error()));
    return;
  }
  bool reads_store = request->op == control_op::status || request->op == control_op::dlq_list;
  if (reads_store && st_.in_batch) {
    st_.deferred_controls.emplace_back(bytes, token);
    return;
  }
  switch (request->op) {
    case control_op::status:
      control_status(request->workflow_id, token);
      return;
    case control_op::dlq_list:
      control_dlq_list(token);
      return;
    case control_op::dlq_replay:
      control_dlq_replay(request->letter, token);
      return;
    case control_op::revoke:
      control_revoke(request->workflow_id, token);
      return;
    case control_op::inspect:
      control_inspect(token);
      return;
    case control_op::metrics:  // ctl.metrics is served beside the actor (cluster_node.cpp)
    case control_op::revoked:
      break;
  }
  st_.cfg.bus->answer_control(
      delivery{{}, token, 1},
      encode_control_error(error{errc::malformed_envelope, std::string{"control op '"} + to_string(request->op) +
                                                               "' is not a request to a dispatcher partition"}));
}

void dispatcher_logic::control_status(const std::string& wf, std::uint64_t token) {
  auto doc = status_document(*st_.cfg.store, wf);
  std::string reply;
  if (!doc) {
    reply = encode_control_error(doc.error());
  } else if (!*doc) {
    reply = encode_control_error(error{errc::not_found, "no workflow with id " + wf});
  } else {
    reply = encode_control_reply(value(std::move(**doc)));
  }
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
}

void dispatcher_logic::control_dlq_list(std::uint64_t token) {
  auto rows = dead_letter_rows(*st_.cfg.store);
  auto reply = rows ? encode_control_reply(value(value::map{{"letters", std::move(*rows)}}))
                    : encode_control_error(rows.error());
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, reply);
}

void dispatcher_logic::control_dlq_replay(std::int64_t letter, std::uint64_t token) {
  st_.control_token = token;  // picked up by replay() when its reply waits for the commit
  auto r = replay(letter);
  st_.control_token = 0;
  if (r.flag == caf::rt_error) {
    st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_error(from_caf_error(r.err, to_string(r.err))));
  }
}

void dispatcher_logic::control_revoke(const std::string& wf, std::uint64_t token) {
  if (find_active(wf) == nullptr) {
    auto rec = st_.cfg.store->find_workflow(wf);
    std::string reply;
    if (!rec) {
      reply = encode_control_error(rec.error());
    } else if (!*rec) {
      reply = encode_control_error(error{errc::not_found, "no workflow with id " + wf});
    } else {
      reply = encode_control_error(error{errc::invalid_workflow, "workflow " + wf + " already finished as " +
                                                                     std::string{to_string((*rec)->state)} +
                                                                     "; there is nothing to revoke"});
    }
    // What the store says may be this batch's own uncommitted finish.
    answer_after_commit(token, std::move(reply));
    return;
  }
  open_batch();
  // Finishing the workflow is the durable record of the revocation: once it
  // commits, a restart does not restore the workflow, and its late outcomes
  // count as duplicates (the once-only rules do not change).
  auto err = error_value(to_string(errc::revoked), "revoked by request");
  check(st_.cfg.store->finish_workflow(wf, node_state::failure, value{}, err, now_ms()));
  changed();
  uncache(wf);
  st_.finished.push_back(workflow_outcome{wf, node_state::failure, value{}, err});
  // Task messages of the workflow that are not published yet never will be.
  auto prefix = wf + ":";
  auto of_workflow = [&](const outgoing_task& t) { return t.id.compare(0, prefix.size(), prefix) == 0; };
  for (auto& [queue, messages] : st_.outbox) {
    messages.erase(std::remove_if(messages.begin(), messages.end(), of_workflow), messages.end());
  }
  // A list the broker refused once stays as it was (see `unsent`): part of
  // it may be queued already, and workers skip a revoked workflow's tasks.
  for (auto& [queue, lists] : st_.unsent) {
    for (auto& list : lists) {
      if (!list.attempted) {
        list.tasks.erase(std::remove_if(list.tasks.begin(), list.tasks.end(), of_workflow), list.tasks.end());
      }
    }
  }
  st_.revoked.push_back(wf);
  value::map outcome{{"id", wf},
                     {"state", std::string{to_string(node_state::failure)}},
                     {"result", value{}},
                     {"error", err}};
  answer_after_commit(token, encode_control_reply(value(std::move(outcome))));
}

void dispatcher_logic::control_inspect(std::uint64_t token) {
  value::map answer = st_.cfg.inspect_identity;
  answer["role"] = "dispatcher";
  value::array in_flight;
  for (const auto& [id, aw] : st_.active) {
    in_flight.emplace_back(id);
  }
  for (const auto& id : st_.evicted) {
    in_flight.emplace_back(id);
  }
  std::sort(in_flight.begin(), in_flight.end(),
            [](const value& a, const value& b) { return a.as_string() < b.as_string(); });
  answer["workflows_in_flight"] = std::move(in_flight);
  std::size_t unsent = 0;
  for (const auto& [queue, lists] : st_.unsent) {
    for (const auto& list : lists) {
      unsent += list.tasks.size();
    }
  }
  answer["unsent_tasks"] = static_cast<std::int64_t>(unsent);
  st_.cfg.bus->answer_control(delivery{{}, token, 1}, encode_control_reply(value(std::move(answer))));
}

dispatcher_actor::behavior_type dispatcher(dispatcher_pointer self, dispatcher_config cfg) {
  // Before anything that can throw (the restore below reads the store).
  // CAF's default handler would print on stdout, which belongs to the CLI's
  // JSON, and give a reason the supervisor cannot tell from a crash.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    try {
      std::rethrow_exception(x);
    } catch (const store_failure& f) {
      error failed{f.err.code(), "store failure: " + f.err.message()};
      if (self->state.cfg.on_store_failure) {
        self->state.cfg.on_store_failure(failed);
      }
      return to_caf_error(failed);
    } catch (const std::exception& e) {
      return to_caf_error(error{errc::task_failed, std::string{"dispatcher failed: "} + e.what()});
    } catch (...) {
      return to_caf_error(error{errc::task_failed, "dispatcher failed: unknown exception"});
    }
  });
  self->state.cfg = std::move(cfg);
  self->state.rng.seed(self->state.cfg.jitter_seed != 0 ? self->state.cfg.jitter_seed : std::random_device{}());
  // A previous incarnation may have died inside a transaction.
  self->state.cfg.store->rollback();
  self->state.cfg.bus->consume_events([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](std::vector<delivery> batch) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      std::vector<std::string> bytes;
      std::vector<std::uint64_t> tokens;
      bytes.reserve(batch.size());
      tokens.reserve(batch.size());
      for (auto& d : batch) {
        // A refused event (unsigned, badly signed) is not applied: it
        // becomes the outcome that dead-letters its bytes with the reason.
        bytes.push_back(d.refused ? encode(poison_outcome(d.bytes, *d.refused)) : std::move(d.bytes));
        tokens.push_back(d.token);
      }
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), event_atom::value, std::move(bytes),
                     std::move(tokens));
    }
  });
  self->state.cfg.bus->consume_control([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](delivery d) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), control_atom::value, std::move(d.bytes), d.token);
    }
  });
  self->state.cfg.bus->consume_submissions([weak = caf::actor_cast<caf::weak_actor_ptr>(self)](delivery d) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
      caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), submit_atom::value, std::move(d.bytes), d.token);
    }
  });
  if (self->state.cfg.watch_lost_tasks) {
    self->state.cfg.watch_lost_tasks(
        [weak = caf::actor_cast<caf::weak_actor_ptr>(self)](std::string bytes, std::int32_t deliveries,
                                                             std::uint64_t handle) {
          if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
            caf::anon_send(caf::actor_cast<dispatcher_actor>(strong), lost_atom::value, std::move(bytes), deliveries,
                           handle);
          }
        });
  }
  dispatcher_logic(self).restore_all();
  return {
      [=](submit_atom, const std::string& bytes) { return dispatcher_logic(self).submit(bytes); },
      [=](submit_atom, const std::string& bytes, std::uint64_t token) {
        dispatcher_logic(self).submit_from_bus(bytes, token);
      },
      [=](event_atom, std::vector<std::string>& batch, const std::vector<std::uint64_t>& tokens) {
        dispatcher_logic(self).on_events(batch, tokens);
      },
      [=](flush_atom) {
        // Also the republish timer: a flush with no open batch retries what
        // the transport refused.
        self->state.republish_scheduled = false;
        dispatcher_logic(self).flush();
        // Here and not inside flush(): a flush in the middle of handling a
        // message (a full batch) must not drop the graph being worked on.
        dispatcher_logic(self).evict_idle();
      },
      [=](due_atom, const std::string& wf, std::int32_t node, std::int32_t attempt, std::uint64_t incarnation) {
        dispatcher_logic(self).on_due(wf, node, attempt, incarnation);
      },
      [=](lost_atom, const std::string& bytes, std::int32_t deliveries, std::uint64_t handle) {
        dispatcher_logic(self).on_lost(bytes, deliveries, handle);
      },
      [=](control_atom, const std::string& bytes, std::uint64_t token) {
        dispatcher_logic(self).control(bytes, token);
      },
      [=](status_atom, const std::string& wf) { return dispatcher_logic(self).status(wf); },
      [=](replay_atom, std::int64_t id) { return dispatcher_logic(self).replay(id); },
      [=](restored_atom) { return self->state.restored; },
      [=](drain_atom) {
        dispatcher_logic(self).flush();
        dispatcher_logic(self).evict_idle();
        return true;
      },
  };
}

}  // namespace

dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_config cfg) {
  return sys.spawn<caf::detached>(dispatcher, std::move(cfg));
}

}  // namespace trellis::detail
