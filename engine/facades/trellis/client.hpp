#pragma once

/// @file
/// The cluster client: submit workflows to a running Trellis cluster (a
/// `trellis dispatcher` and its workers, over NATS) from any C++ program,
/// wait for them, and ask the dispatchers about them: status, revoke, dead
/// letters. It connects with the same settings as the command line
/// (docs/cluster.md "Configuration"), and `trellis submit` is built on it.
///
/// @code
/// trellis::client_options opts;
/// opts.broker_urls = {"nats://127.0.0.1:4222"};
/// auto client = trellis::client::connect(opts);             // expected<unique_ptr<client>>
/// auto run = (*client)->submit(trellis::chain(add.with(2, 2), add.with(4)), "order-17");
/// auto result = run->wait_for(std::chrono::seconds{5});   // 8
/// @endcode
///
/// The handle has the API and the meaning of the embedded engine's
/// `workflow_handle` (engine.hpp); the calls on the client mirror
/// `engine::status`, `engine::revoke`, `engine::dead_letters` and
/// `engine::replay_dead_letter`, asked over the broker of the dispatcher
/// that owns the workflow's partition. No NATS type appears here.
///
/// Thread-safe: one client may be used by many threads at once.

#include "trellis/canvas.hpp"
#include "trellis/engine.hpp"
#include "trellis/error.hpp"
#include "trellis/node_state.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trellis {

/// How a client connects: the settings `trellis submit` takes as flags,
/// environment variables or config-file keys (docs/cluster.md
/// "Configuration"), with the same meaning. Secrets (`password`, `token`,
/// `signing_key`) are never printed, not even in errors.
struct client_options {
  /// NATS servers, e.g. `nats://127.0.0.1:4222`; at least one (`--broker`).
  std::vector<std::string> broker_urls;
  /// The Trellis namespace (`--namespace`).
  std::string ns = "default";
  /// Dispatcher partitions of the namespace (`--partitions`): the same
  /// count as every process of the namespace, since it routes each
  /// workflow to its dispatcher.
  int partitions = 1;
  /// User and password (`--user`, `--password-file`); a password needs a user.
  std::string user;
  std::string password;
  /// Authentication token (`--token-file`); not together with `user`.
  std::string token;
  /// A NATS `.creds` file (`--creds`).
  std::string creds_file;
  /// TLS: CA file, and a client certificate with its key (both or neither)
  /// (`--tls-ca`, `--tls-cert`, `--tls-key`). Any of them requires TLS.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  /// The message signing key shared by the cluster (decision 0010): a file
  /// holding it (`--signing-key-file`; trailing whitespace is ignored) or
  /// the key bytes themselves, at least 32; one of them, or neither when
  /// the cluster does not sign.
  std::string signing_key_file;
  std::string signing_key;
  /// Bounds on what is submitted, as `--max-submission-bytes` etc.: a
  /// workflow over them is refused here, before it is sent.
  canvas_limits limits;
  /// How long `submit` waits for the dispatcher to commit a workflow (and,
  /// while none listens, for one to appear); `timeout` after it.
  std::chrono::milliseconds submit_timeout = std::chrono::seconds{30};
  /// The same for `status`, `revoke`, `dead_letters`, `replay_dead_letter`.
  std::chrono::milliseconds request_timeout = std::chrono::seconds{10};
  /// The client name the NATS server shows in its monitoring.
  std::string client_name = "trellis-client";
};

/// The workflow id that `client::submit` (and `trellis submit --key`) gives
/// a submission keyed `key` in namespace `ns`: 32 hex digits derived from
/// both, always the same (docs/cluster.md "C++ client").
std::string workflow_id_for_key(const std::string& ns, const std::string& key);

namespace detail {
class client_core;
class client_watch;
}  // namespace detail

/// A workflow submitted to (or found in) a cluster. Cheap to copy; all
/// copies share what they learnt. Each handle listens for its workflow's
/// completion notice, and asks the owning dispatcher for the workflow's
/// status at its first wait, every few seconds while waiting and after a
/// reconnect, so a lost notice only delays the answer. A handle keeps its
/// client's connection open while it exists.
class client_handle {
 public:
  const std::string& id() const noexcept { return id_; }

  /// Blocks until the workflow finishes or `timeout` passes. SUCCESS gives
  /// the result; FAILURE gives `errc::workflow_failed` whose message names
  /// the failed task and its error (details in `error_details()`); REVOKED
  /// gives `errc::revoked`; a timeout gives `errc::timeout` and the
  /// workflow carries on. A dispatcher or broker that does not answer
  /// meanwhile is asked again; `malformed_envelope` for a notice or status
  /// that cannot be read.
  expected<value> wait_for(std::chrono::milliseconds timeout) const;

  /// SUCCESS, FAILURE or REVOKED once finished; STARTED before (also while
  /// the dispatcher cannot be asked). Unless the handle knows the outcome
  /// already, this asks the dispatcher (one request).
  node_state state() const;

  /// After FAILURE or REVOKED: {"task", "node", "type", "message"} ("task"
  /// and "node" absent when the whole workflow was revoked); nil otherwise.
  /// Asks the dispatcher as `state()` does.
  value error_details() const;

 private:
  friend class detail::client_core;
  client_handle(std::string id, std::shared_ptr<detail::client_watch> watch)
      : id_(std::move(id)), watch_(std::move(watch)) {}
  std::string id_;
  std::shared_ptr<detail::client_watch> watch_;
};

/// A connection to a cluster's broker in one namespace.
class client {
 public:
  /// Checks `opts` and connects. Errors: `invalid_config` naming the first
  /// bad field (no broker, a password without a user, a user and a token,
  /// a TLS certificate without its key, a short or unreadable signing key,
  /// ...), `broker_unavailable` when no server answers.
  static expected<std::unique_ptr<client>> connect(const client_options& opts);

  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Submits a workflow and returns once the owning dispatcher committed
  /// it. Without `key`, under a new random id. With `key`, under
  /// `workflow_id_for_key(ns, key)`, and the key travels with it: a second
  /// submission with the same key (from any client of the namespace, also
  /// after a crash or a lost answer) returns the first workflow instead of
  /// starting another, as `engine::submit` does. Errors: `invalid_workflow`
  /// (an empty key, refused by the dispatcher, or a priority, which a
  /// cluster cannot honour), `payload_too_large`, `broker_unavailable`, `timeout`,
  /// `malformed_envelope`.
  expected<client_handle> submit(const canvas& flow, std::optional<std::string> key = std::nullopt);

  /// A handle on any workflow of the namespace, finished or not.
  /// Errors: `not_found`, and those of `status`.
  expected<client_handle> find(const std::string& workflow_id);

  /// The status document of a workflow, as `trellis status` prints it
  /// (docs/cli.md "Status line"), from the dispatcher owning it. Errors:
  /// `not_found`, `broker_unavailable`, `timeout`, `malformed_envelope`.
  expected<value> status(const std::string& workflow_id);

  /// A page of the namespace's workflows, newest first, merged from every
  /// partition's dispatcher: as `engine::workflows`. Errors: `invalid_config`
  /// (a limit out of range), `malformed_envelope` (a bad cursor),
  /// `broker_unavailable`, `timeout` (a partition's dispatcher did not answer).
  expected<value> workflows(const workflow_query& query = {});

  /// A workflow's graph, as `engine::graph`, from the dispatcher owning it.
  /// Errors as `status`.
  expected<value> graph(const std::string& workflow_id);

  /// Revokes a workflow, or one node of it, as `engine::revoke` (same
  /// options, same answer: {id, state, result, error} for a whole
  /// workflow, {id, node, state, revoked} for a node). Errors: `not_found`,
  /// `invalid_workflow` (finished already), `broker_unavailable`, `timeout`.
  expected<value> revoke(const std::string& workflow_id, revoke_options options = {});

  /// The dead letters of the dispatcher of `partition` (each dispatcher
  /// partition keeps its own), newest first, replayed ones included: the
  /// rows `trellis dlq list` prints (docs/cli.md "Dead-letter line").
  /// Errors: `invalid_config` for a negative partition,
  /// `broker_unavailable`, `timeout` (no dispatcher of that partition
  /// answered), `malformed_envelope`.
  expected<value::array> dead_letters(int partition = 0);

  /// Runs the dead-lettered node `letter` of the dispatcher of `partition`
  /// again with a fresh retry budget, reopening its workflow, and returns a
  /// handle on that workflow; the handles on it from before forget the old
  /// outcome and wait for the new one too. Errors: `not_found`, `invalid_workflow`
  /// (replayed already, or no node), and those of `dead_letters`.
  expected<client_handle> replay_dead_letter(std::int64_t letter, int partition = 0);

  /// Deletes, in every partition, the workflows that finished more than
  /// `older_than` ago, as `engine::prune` (each partition's dispatcher
  /// deletes its own, in bounded transactions); returns how many in all.
  /// Errors: `invalid_config` (negative or longer than
  /// `defaults::max_expires`), `broker_unavailable`, `timeout` (a
  /// partition's dispatcher did not answer: the others may have pruned).
  expected<std::int64_t> prune(std::chrono::milliseconds older_than);

  /// Deletes one finished workflow, as `engine::forget`, at the dispatcher
  /// owning it. Errors: `not_found`, `invalid_workflow` (not finished),
  /// `broker_unavailable`, `timeout`.
  expected<void> forget(const std::string& workflow_id);

  /// The namespace and partition count the client was connected with.
  const std::string& ns() const noexcept;
  int partitions() const noexcept;

 private:
  friend class detail::client_core;
  explicit client(std::shared_ptr<detail::client_core> core);
  std::shared_ptr<detail::client_core> core_;
};

}  // namespace trellis
