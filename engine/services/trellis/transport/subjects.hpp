#pragma once

/// @file
/// The only place NATS subject, stream and consumer names are spelled. Every
/// other file asks a `subject_space` for them, so the wire layout
/// (docs/wire-protocol.md) is written down once:
///
/// | what                       | subject / name                    |
/// |----------------------------|-----------------------------------|
/// | task messages of a queue   | `trellis.<ns>.task.<queue>.<task>` |
/// | outcome events             | `trellis.<ns>.event.<partition>`  |
/// | submissions                | `trellis.<ns>.submit.<partition>` |
/// | control (ping, revoke ...) | `trellis.<ns>.ctl.>`              |
/// | control of one partition   | `trellis.<ns>.ctl.<verb>.<partition>` |
/// | workflow finished          | `trellis.<ns>.done.<workflow>`    |
/// | task events (lifecycle)    | `trellis.<ns>.lifecycle`          |
/// | task stream                | `TRELLIS_<NS>_TASKS`              |
/// | event stream               | `TRELLIS_<NS>_EVENTS`             |
/// | consumer of one task of a queue | `task-<hash of queue and task>` |
/// | consumer of one task, every queue | `all-task-<hash of task>`     |
/// | consumer of a queue, every task | `worker-<queue>` (tools, tests) |
/// | consumer of every queue and task | `all-queues` (tools, tests)   |
/// | event consumer             | `dispatcher-<partition>`          |
/// | task delivery exhausted    | `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRELLIS_<NS>_TASKS.*` |
/// | lost stream (those advisories, kept) | `TRELLIS_<NS>_LOST`     |
/// | lost-task consumer         | `lost-<partition>`                |
///
/// Names that come from users (namespace, queue, workflow id) are validated:
/// each must be exactly one NATS subject token that is also usable in a
/// stream or durable consumer name, which JetStream turns into a directory.
/// A task name is not validated, since any name may be registered: it
/// stands in a subject as its `task_token` (decision 0022).

#include "trellis/error.hpp"

#include <cstddef>
#include <string>
#include <optional>
#include <string_view>
#include <utility>

namespace trellis::detail {

/// Checks that `token` can stand as one subject token and inside a stream or
/// consumer name: 1 to 64 printable ASCII characters, none of them a space,
/// `.`, `*`, `>`, `/` or `\`. `what` names the field in the error
/// (`errc::invalid_config`), for example "queue".
expected<void> validate_token(std::string_view what, std::string_view token);

/// The subjects and JetStream names of one Trellis namespace. A value type;
/// copies are cheap and every member function is safe to call concurrently.
class subject_space {
 public:
  /// The space of namespace `ns`, which must be 1 to 32 characters of
  /// `[a-z0-9_-]` starting with a letter or digit. Lower case only, so the
  /// upper-cased stream names (`TRELLIS_<NS>_TASKS`) stay one-to-one with
  /// namespaces. Fails with `errc::invalid_config` naming the bad character.
  static expected<subject_space> make(std::string_view ns);

  /// The namespace this space was made for.
  const std::string& ns() const noexcept { return ns_; }

  /// How task `name` stands in a subject: the name itself when it is a
  /// valid token not starting with `~`, else `~` and 16 hex digits of its
  /// 64-bit FNV-1a hash. Every process derives it alike, so a publisher and
  /// the workers that registered `name` meet on one subject.
  static std::string task_token(std::string_view name);
  /// `trellis.<ns>.task.<queue>.<task_token(task)>`: where a task message
  /// of `task` for `queue` goes; fails when `queue` is not a valid token.
  expected<std::string> task(std::string_view queue, std::string_view task) const;
  /// `trellis.<ns>.task.<queue>.*`: every task of `queue`; fails when
  /// `queue` is not a valid token.
  expected<std::string> queue_tasks(std::string_view queue) const;
  /// `trellis.<ns>.task.*.<task_token(task)>`: `task` in every queue.
  std::string task_in_all_queues(std::string_view task) const;
  /// `trellis.<ns>.task.>`: every queue (the task stream's subject).
  std::string all_tasks() const;
  /// The queue and task token of a task subject
  /// (`trellis.<ns>.task.<queue>.<token>`); empty when `subject` is not one.
  std::optional<std::pair<std::string, std::string>> task_subject_parts(std::string_view subject) const;
  /// `trellis.<ns>.event.<partition>`; fails for a negative partition.
  expected<std::string> event(int partition) const;
  /// `trellis.<ns>.event.>`: every partition (the event stream's subject).
  std::string all_events() const;
  /// `trellis.<ns>.submit.<partition>`; fails for a negative partition.
  expected<std::string> submit(int partition) const;
  /// `trellis.<ns>.ctl.>`: every control verb.
  std::string control() const;
  /// `trellis.<ns>.lifecycle`: task events (lifecycle_events.hpp), core NATS.
  std::string lifecycle() const;
  /// `trellis.<ns>.ctl.<verb>`; fails when `verb` is not a valid token.
  expected<std::string> control(std::string_view verb) const;
  /// `trellis.<ns>.ctl.<verb>.<partition>`: a control request for the
  /// dispatcher owning `partition` (status, revoke, dlq); fails when `verb`
  /// is not a valid token or the partition is negative.
  expected<std::string> control(std::string_view verb, int partition) const;
  /// `trellis.<ns>.ctl.*.<partition>`: every control verb addressed to the
  /// dispatcher owning `partition`; fails for a negative partition.
  expected<std::string> partition_control(int partition) const;
  /// `trellis.<ns>.done.<workflow>`; fails when the id is not a valid token.
  expected<std::string> done(std::string_view workflow_id) const;

  /// `TRELLIS_<NS>_TASKS`: the work-queue stream holding every task queue.
  std::string task_stream() const;
  /// `TRELLIS_<NS>_EVENTS`: the work-queue stream holding outcome events.
  std::string event_stream() const;
  /// `task-<16 hex digits>`: the durable pull consumer of task `task` in
  /// `queue`, shared by every worker of `queue` that registered `task`
  /// (filtered on `task(queue, task)`). A hash, since a queue and a task
  /// name together may be longer than a consumer name may be. Fails when
  /// `queue` is not a valid token.
  expected<std::string> queue_task_consumer(std::string_view queue, std::string_view task) const;
  /// `all-task-<16 hex digits>`: the durable pull consumer of task `task` in
  /// every queue, for workers that serve every queue (filtered on
  /// `task_in_all_queues(task)`).
  std::string all_queues_task_consumer(std::string_view task) const;
  /// `worker-<queue>`: a durable pull consumer of every task of `queue`,
  /// for a process that runs whatever comes (the transport's tests, tools);
  /// workers bind `queue_task_consumer`s. Fails when `queue` is not a valid
  /// token.
  expected<std::string> queue_consumer(std::string_view queue) const;
  /// `all-queues`: a durable pull consumer of every task of every queue, as
  /// `queue_consumer` for every queue.
  std::string all_queues_consumer() const;
  /// `dispatcher-<partition>`: the durable pull consumer of the dispatcher
  /// owning `partition`; fails for a negative partition.
  expected<std::string> event_consumer(int partition) const;
  /// The JetStream advisory subject announcing, for any consumer of the task
  /// stream, a message that reached its MaxDeliver without an ack.
  std::string task_max_deliveries_advisory() const;
  /// `TRELLIS_<NS>_LOST`: the stream that keeps those advisories, so that a
  /// dispatcher that was down when one fired still reads it.
  std::string lost_stream() const;
  /// `TRELLIS_<NS>_REVOKED`: the stream that keeps the `revoked` notices
  /// (`trellis.<ns>.ctl.revoked`), so that a worker started after a
  /// revocation still learns of it.
  std::string revoked_stream() const;
  /// `TRELLIS_<NS>_UPLOADS`: the pieces of messages larger than one NATS
  /// message (nats_uploads.hpp).
  std::string upload_stream() const;
  /// `TRELLIS_<NS>_RATES`: the key-value bucket of the next free start slot
  /// of each rate-limited task name (nats_rates.hpp).
  std::string rate_bucket() const;
  /// `trellis.<ns>.upload.>`: every piece of every upload.
  std::string all_uploads() const;
  /// `trellis.<ns>.upload.<id>.<piece>`; fails for an id that is not a
  /// subject token.
  expected<std::string> upload_piece(std::string_view id, std::size_t piece) const;
  /// `trellis.<ns>.upload.<id>.>`: every piece of upload `id`.
  expected<std::string> upload_pieces(std::string_view id) const;
  /// `lost-<partition>`: the durable pull consumer through which the
  /// dispatcher owning `partition` reads the lost stream; fails for a
  /// negative partition.
  expected<std::string> lost_consumer(int partition) const;

 private:
  explicit subject_space(std::string ns);

  std::string ns_;
  std::string prefix_;  // "trellis.<ns>."
};

}  // namespace trellis::detail
