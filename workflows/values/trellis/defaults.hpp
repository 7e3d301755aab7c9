#pragma once

/// @file
/// The one source of the defaults and bounds that more than one layer
/// uses: the engine's and a cluster process's configuration structs, the
/// actors' own configs, the CLI's flags and their range checks all name
/// these instead of repeating a number. Why each value is what it is lives
/// here, beside it.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace trellis::defaults {

/// The SQLite store of `run`, `resume` and a dispatcher when none is named.
inline constexpr const char* store_path = "trellis.db";

/// Task messages one handler thread takes per fetch. 64, not more, so a
/// slow batch does not hold many unacked messages past the AckWait
/// (outcomes of quick tasks still go out every 2 ms); not less, since each
/// fetch is a pull request and each batch's outcomes one publish: at 16 the
/// workers and nats-server spent about twice the CPU per no-op task
/// (docs/performance.md, cluster mode).
inline constexpr std::size_t fetch_batch = 64;
/// The largest fetch batch a flag or config accepts: 4x the default, and
/// as many messages as a worker may hold unacked per thread.
inline constexpr std::size_t max_fetch_batch = 256;

/// JetStream AckWait of the consumers a cluster process declares: how long
/// a delivery may go without an ack or an in-progress mark before JetStream
/// delivers it again. Short, because a live process marks what it holds in
/// progress three times per AckWait (the NATS transport's keep-alive
/// thread), whatever its handler or its commit is doing: only a holder that
/// died, is stopped or is cut off lets it run out, and then a killed
/// worker's tasks run on another worker about this long later. Not shorter:
/// a nats-server restart or a leader election in an R3 cluster takes a few
/// seconds, and marks cannot reach it meanwhile.
inline constexpr std::chrono::milliseconds ack_wait{5'000};

/// How long a worker or dispatcher that starts while no NATS server
/// answers keeps trying before it exits with `broker_unavailable`: long
/// enough to ride out a broker that starts at the same time (a machine
/// boot, `docker compose up`), short enough that a wrong URL is reported
/// within a minute. Refused credentials or TLS are reported at once.
inline constexpr std::chrono::milliseconds broker_wait{60'000};

/// How large a workflow and its values may be, encoded (msgpack), unless
/// configured otherwise (`canvas_limits`, the `--max-*-bytes` flags). Large
/// enough that a user meets them only by mistake; they are a guard on
/// memory and on the store, not a ceiling of the design: over NATS a
/// message larger than the server's max_payload travels in pieces.
///
/// A whole submitted workflow (the submit envelope): a group of 2,000,000
/// no-ops is about 50 MB.
inline constexpr std::size_t max_submission_bytes = 256u << 20;
/// One task's arguments, `args` and `kwargs` with the input from a previous
/// step: a chord body's input is every header result at once, so this is
/// larger than one result.
inline constexpr std::size_t max_argument_bytes = 256u << 20;
/// One task's result.
inline constexpr std::size_t max_result_bytes = 64u << 20;
/// The largest value a size limit may be configured to: SQLite keeps a
/// workflow's canvas and each result in one column value, and refuses one
/// over SQLITE_MAX_LENGTH (1,000,000,000 bytes in Debian's build).
inline constexpr std::size_t max_configurable_bytes = 900u << 20;
/// What a message holds beyond its arguments or result (ids, names,
/// options, an error message), as room on top of the size limits.
inline constexpr std::size_t envelope_room = 64u << 10;

/// Workflow graph nodes the dispatcher keeps in memory; idle workflows
/// beyond it are rebuilt from the store when needed (decision 0011). About
/// 100 MB of graphs at the measured 1 KB a node.
inline constexpr std::size_t max_cached_nodes = 100'000;
/// The largest `max_cached_nodes` a flag or config accepts.
inline constexpr std::size_t max_cached_nodes_limit = 100'000'000;

/// Handler threads, at most: more is a typo rather than a plan (each is an
/// OS thread with its own stack).
inline constexpr std::size_t max_concurrency = 1024;

/// Handler threads a worker may leave running past their hard time limit
/// (`time_limit_ms`) before it stops taking tasks until one of them
/// returns. An abandoned thread cannot be stopped (C++ has no safe way to
/// kill a thread), so each one still holds its stack and whatever its
/// handler holds, and a spinning one a core: 16 is far more than a healthy
/// worker ever has, and few enough that a task that always hangs stops a
/// worker long before it exhausts the machine. The largest accepted value
/// is `max_concurrency`.
inline constexpr std::size_t max_abandoned_handlers = 16;

/// Dispatcher partitions of a namespace, at most: each one is a store, a
/// NATS connection and a dispatcher thread.
inline constexpr int max_partitions = 1024;

/// A revoke with terminate stops a running handler's token at once; a
/// handler with a hard time limit that has not returned this much later is
/// abandoned, as at its hard limit (docs/canvas.md, "Revoking").
inline constexpr std::chrono::milliseconds terminate_grace{2'000};

/// Progress a handler reports (`task_context::report_progress`): its
/// message is cut to this many bytes (at a UTF-8 character boundary).
inline constexpr std::size_t max_progress_message_bytes = 256;

/// A custom state name (`task_context::set_state`) has 1 to this many
/// characters of [A-Z0-9_].
inline constexpr std::size_t max_custom_state_chars = 64;

/// A worker sends the latest progress of a running task at most this often
/// (plus the last one, right before the outcome); reports in between only
/// replace what waits to be sent (docs/canvas.md, "Progress and custom states").
inline constexpr std::chrono::milliseconds progress_report_interval{100};

/// The nesting bound when reading a value this system wrote itself (a
/// workflow's stored result, a done notice, a status answer): far deeper
/// than a submitted envelope may nest (`envelope_limits::max_depth`, 64), so
/// it never refuses a legitimate value, and still a guard for the decoder's
/// stack against a hostile or corrupted one.
inline constexpr std::size_t max_stored_value_depth = 1024;

/// How long a facade waits for one answer from an actor (a submission, a
/// status, the current dispatcher) before it reports `timeout`. Generous: a
/// dispatcher answers in microseconds unless it is committing a very large
/// workflow or its store is stalled, and then the caller learns that much.
inline constexpr auto max_actor_answer_wait = std::chrono::minutes{5};

/// How long a process's stop (`actor_runtime::stop`, and the supervisor's
/// drain of each child) waits for the drain: the handlers in hand to finish
/// and the dispatcher to commit. Past it the stop goes on and says so on
/// stderr; the tasks still in hand are not lost (embedded, they
/// are ready again at the next start; in a cluster, the broker delivers
/// them again), and the join still waits for handlers that have not returned.
inline constexpr auto max_drain_wait = std::chrono::minutes{10};

/// Retention (docs/operations.md "Retention", decision 0036). Each is a
/// duration after which the dispatcher deletes what it names; 0 keeps it
/// forever.
///
/// A finished workflow, with its nodes, attempts, progress and result, is
/// kept this long after it finished: one day, as Celery's `result_expires`.
inline constexpr std::chrono::milliseconds result_expires{86'400'000};
/// A step's idempotency key (the record that its effect happened) is kept
/// this long after it was recorded: a week, far longer than any retry or
/// re-submission of the same work is expected to come. An expired key lets
/// the effect happen again, so it has its own setting.
inline constexpr std::chrono::milliseconds idempotency_key_expires{7LL * 86'400'000};
/// A dead letter is kept this long after it was stored: a month, since it
/// waits for a person to look at it (and replay it). A workflow pruned
/// before its dead letters leaves them readable; replaying one then says
/// the store no longer holds its workflow.
inline constexpr std::chrono::milliseconds dead_letter_expires{30LL * 86'400'000};
/// The longest retention a flag or config accepts (about ten years): more
/// is a typo, and the cut-off time must not overflow.
inline constexpr std::chrono::milliseconds max_expires{3650LL * 86'400'000};
/// How often the dispatcher looks for expired rows when the last sweep
/// found fewer than a full batch; a sweep that deletes a full batch is
/// followed at once by another (behind the messages already queued).
inline constexpr std::chrono::milliseconds retention_sweep_interval{5'000};
/// Rows (workflows, keys, dead letters) one sweep deletes at most, in one
/// transaction of the dispatcher's: it never holds the dispatcher for long.
inline constexpr std::size_t retention_batch = 1'000;

/// Periodic schedules (docs/schedules.md). An interval is at least a second
/// (the scheduler's resolution, and the real-time test's tick) and at most
/// a year, so that its tick times stay far from overflow.
inline constexpr std::chrono::milliseconds min_schedule_interval{1'000};
inline constexpr std::chrono::milliseconds max_schedule_interval{366LL * 24 * 3600 * 1000};
/// How late a tick may be submitted and still count as on time, for the
/// `skip` catch-up policy: a scheduler that wakes a little late (a busy
/// machine, a lease handed over) still runs the tick; one that was down for
/// longer than this skips it.
inline constexpr std::chrono::milliseconds schedule_late_grace{60'000};
/// The ticks `--catchup all` submits after downtime when it names no
/// bound, and the largest bound `all:N` accepts: enough to replay a day of
/// a 15-minute schedule, few enough that a long outage does not flood the
/// queues.
inline constexpr std::uint32_t schedule_catchup_bound = 100;
inline constexpr std::uint32_t max_schedule_catchup_bound = 10'000;
/// How often an embedded scheduler reads its schedules again although
/// nothing it knows of is due: to see a `schedule` command another process
/// wrote, and whether the run a buffered tick waits for has finished. A
/// change made through the engine's own API wakes it at once.
inline constexpr std::chrono::milliseconds schedule_poll{1'000};
/// The longest schedule name: it is part of every tick's submission key and
/// of a JetStream KV key.
inline constexpr std::size_t max_schedule_name_chars = 64;

}  // namespace trellis::defaults
