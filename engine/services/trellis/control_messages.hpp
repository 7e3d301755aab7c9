#pragma once

/// @file
/// The bodies of cluster control messages (core NATS request/reply under
/// `trellis.<ns>.ctl.>`, docs/cluster.md "Control"): a request names one
/// operation, a reply carries either a result or an error. Both are msgpack
/// maps with a contract version `v` (1).
///
/// | op           | subject                          | request fields | reply `ok`                          |
/// |--------------|----------------------------------|----------------|-------------------------------------|
/// | `status`     | `ctl.status.<partition>`         | `id`           | the status document (`status_document`) |
/// | `revoke`     | `ctl.revoke.<partition>`         | `id`, optional `node`, `terminate` | {id, state, result, error} after the commit; with `node`: {id, node, state, revoked} |
/// | `dlq_list`   | `ctl.dlq.<partition>`            |                | {letters: [dead letter rows]}       |
/// | `dlq_replay` | `ctl.dlq.<partition>`            | `letter`       | {id} of the reopened workflow       |
/// | `list`       | `ctl.list.<partition>`           | `limit`, optional `state`, `cursor` | {workflows: [list lines], next: cursor or nil} |
/// | `graph`      | `ctl.graph.<partition>`          | `id`           | the graph document (`graph_document`) |
/// | `prune`      | `ctl.prune.<partition>`          | `older_than_ms` | {pruned: workflows deleted} after the commits |
/// | `forget`     | `ctl.forget.<partition>`         | `id`           | {id} after the commit               |
/// | `inspect`    | `ctl.inspect` (every process)    |                | one answer per process (docs/cli.md)|
/// | `metrics`    | `ctl.metrics` (every process)    |                | {role, name, text}: Prometheus text  |
/// | `revoked`    | `ctl.revoked` (every worker)     | `id`, optional `nodes`, `terminate` | none: a notice, not a request       |
///
/// Decoding is strict, as for envelopes: an unknown version is
/// `unsupported_version`; a missing, unknown or mistyped field, or bytes that
/// are not one msgpack map, are `malformed_envelope`; more than
/// `max_control_bytes` is `payload_too_large`. It never throws.

#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// The control contract version this build speaks.
inline constexpr std::int64_t control_version = 1;

/// The largest control message (request or reply) this build reads. A
/// `dlq list` answer holds one row per dead letter, hence the generous bound.
inline constexpr std::size_t max_control_bytes = 64 * 1024 * 1024;

/// What a control request asks for.
enum class control_op {
  /// A workflow's state, result, error, nodes and failed attempts.
  status,
  /// Finish a workflow as FAILURE with error type `revoked`.
  revoke,
  /// Every dead letter of the partition's store, replayed ones included.
  dlq_list,
  /// Run a dead-lettered node again.
  dlq_replay,
  /// Who is there: workers (queues, concurrency, active tasks), dispatchers.
  inspect,
  /// Each process's metrics as Prometheus text (answered by the process,
  /// not through a dispatcher actor: the metrics are thread-safe).
  metrics,
  /// Notice to workers: skip queued tasks of this workflow.
  revoked,
  /// A page of the partition's workflows, newest first (`trellis list
  /// --broker`, `GET /api/workflows`).
  list,
  /// A workflow's canvas as a graph of nodes with their states
  /// (`GET /api/workflows/ID`).
  graph,
  /// Delete every workflow of the partition that finished more than
  /// `older_than_ms` ago (`trellis prune --broker`, decision 0036).
  prune,
  /// Delete one finished workflow (`trellis forget --broker`).
  forget,
};

/// The wire name of `op` ("status", "dlq_list", ...).
const char* to_string(control_op op) noexcept;

/// The subject verb `op` travels under (`trellis.<ns>.ctl.<verb>...`):
/// "status", "revoke", "dlq" (list and replay), "inspect", "metrics",
/// "revoked".
const char* subject_verb(control_op op) noexcept;

/// One control request.
struct control_request {
  control_op op = control_op::inspect;
  /// The workflow (`status`, `revoke`, `revoked`); empty otherwise.
  std::string workflow_id;
  /// The dead letter (`dlq_replay`); 0 otherwise.
  std::int64_t letter = 0;
  /// `revoke`: one node of the workflow (0 to INT32_MAX; a composite node
  /// stands for every task under it); empty: all of it.
  std::optional<std::int32_t> node;
  /// `revoked`: the task nodes whose messages may be out (at most
  /// `max_revoked_nodes`); empty: the whole workflow.
  std::vector<std::int32_t> nodes;
  /// `revoke`, `revoked`: also stop the handlers running the revoked tasks
  /// (their stop token at once, abandoned after a grace period).
  bool terminate = false;
  /// `list`: only workflows in this state (a `node_state` name such as
  /// "SUCCESS"); empty: every state.
  std::string state;
  /// `list`: the most workflows in the answer, 1 to `max_list_page`.
  std::int64_t limit = 20;
  /// `prune`: workflows finished more than this many ms ago, 0 to
  /// `defaults::max_expires`.
  std::int64_t older_than_ms = 0;
  /// `list`: continue after this cursor (the `next` of the page before,
  /// at most `max_cursor_bytes`); empty: from the newest.
  std::string cursor;
};

/// The most workflows one `list` answer holds.
inline constexpr std::int64_t max_list_page = 10'000;
/// The longest `list` cursor (`<created_at ms>.<workflow id>`).
inline constexpr std::size_t max_cursor_bytes = 512;

/// The most task nodes one `revoked` notice lists (a worker remembers a
/// bounded number of revocations anyway).
inline constexpr std::size_t max_revoked_nodes = 10'000;

/// The request as msgpack: {v, op} plus `id` or `letter` where `op` takes
/// one, `node` (when set) for `revoke`, `nodes` (when not empty) for
/// `revoked`, `terminate` (when true) for both, and `limit`, `state` and
/// `cursor` (the last two when not empty) for `list`, `older_than_ms` for
/// `prune`.
std::string encode(const control_request& r);

/// Reads a request strictly (see the file comment for the errors).
expected<control_request> decode_control_request(std::string_view bytes);

/// A successful reply: {v, ok: body}.
std::string encode_control_reply(const value& body);

/// A failed reply: {v, error: {type: errc name, message}}.
std::string encode_control_error(const error& e);

/// Reads a reply: the `ok` body, or the error it carries (its `type` mapped
/// back to an `errc`; an unknown type becomes `malformed_envelope`, keeping
/// the message). A reply that cannot be read is `malformed_envelope`.
expected<value> decode_control_reply(std::string_view bytes);

}  // namespace trellis::detail
