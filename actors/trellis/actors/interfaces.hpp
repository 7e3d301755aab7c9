#pragma once

/// @file
/// The messages Trellis' actors exchange inside one process: atoms, the typed
/// interfaces of the dispatcher, worker pool and supervisor, and the mapping
/// between `trellis::error` and `caf::error`.
///
/// Payloads are encoded envelopes (std::string) or plain built-in types, so
/// every message is inspectable by CAF and the wire contract is the same
/// in-process and over NATS.

#include "trellis/error.hpp"

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace trellis::detail {

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using due_atom = caf::atom_constant<caf::atom("due")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using restored_atom = caf::atom_constant<caf::atom("restored")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using lost_atom = caf::atom_constant<caf::atom("lost")>;
using control_atom = caf::atom_constant<caf::atom("control")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;

/// The only writer of workflow state.
using dispatcher_actor = caf::typed_actor<
    /// A submit envelope; replies with the workflow id once it is committed
    /// (an existing id when the submit key was seen before).
    caf::replies_to<submit_atom, std::string>::with<std::string>,
    /// A submit envelope that came over the transport, with the token to
    /// answer it by (`transport::answer_submission`) once it is committed.
    caf::reacts_to<submit_atom, std::string, std::uint64_t>,
    /// A batch of outcome envelopes from the transport, with the tokens to
    /// ack each one by once it is committed.
    caf::reacts_to<event_atom, std::vector<std::string>, std::vector<std::uint64_t>>,
    /// A task message the broker stopped delivering after this many
    /// deliveries without an ack ("worker lost"), with the broker's handle
    /// to discard it by once that is committed (cluster mode).
    caf::reacts_to<lost_atom, std::string, std::int32_t, std::uint64_t>,
    /// Commits the open batch, then publishes and notifies (sent to itself).
    caf::reacts_to<flush_atom>,
    /// A retry or countdown fell due: dispatch attempt `attempt` of the node.
    caf::reacts_to<due_atom, std::string, std::int32_t, std::int32_t, std::uint64_t>,
    /// A control request (control_messages.hpp) that came over the
    /// transport, with the token to answer it by (`transport::answer_control`).
    caf::reacts_to<control_atom, std::string, std::uint64_t>,
    /// Status of a workflow as a msgpack-encoded map {id, state, result, error}.
    caf::replies_to<status_atom, std::string>::with<std::string>,
    /// Replays a dead letter; replies with the id of the workflow it reopened.
    caf::replies_to<replay_atom, std::int64_t>::with<std::string>,
    /// Ids of the unfinished workflows restored from the store at start.
    caf::replies_to<restored_atom>::with<std::vector<std::string>>,
    /// Retention sweep (sent to itself on a timer): deletes, in one bounded
    /// transaction, expired finished workflows, idempotency keys and dead
    /// letters (dispatcher_config, "Retention").
    caf::reacts_to<expire_atom>,
    /// Deletes every finished workflow that finished more than this many
    /// milliseconds ago, in bounded transactions; replies with how many,
    /// once committed (`prune` by hand).
    caf::replies_to<expire_atom, std::int64_t>::with<std::int64_t>,
    /// Deletes one finished workflow and what it owns; replies with its id
    /// once committed, or `not_found` / `invalid_workflow` (unfinished).
    caf::replies_to<forget_atom, std::string>::with<std::string>,
    /// Commits what is pending; replies when done.
    caf::replies_to<drain_atom>::with<bool>>;

/// Runs handlers on its own threads (never on CAF's scheduler).
using worker_pool_actor = caf::typed_actor<
    /// Stops fetching, finishes the tasks in hand, reports their outcomes.
    caf::replies_to<drain_atom>::with<bool>>;

/// One per process: spawns, monitors and restarts the others.
using supervisor_actor = caf::typed_actor<
    /// The current dispatcher (it changes after a restart).
    caf::replies_to<start_atom>::with<dispatcher_actor>,
    /// Backoff elapsed: start the dispatcher (true) or the worker pool again.
    caf::reacts_to<restart_atom, bool>,
    /// Graceful stop: drain workers, then the dispatcher; replies when done.
    caf::replies_to<drain_atom>::with<bool>>;

/// Category of Trellis errors inside CAF messages.
inline constexpr caf::atom_value trellis_error_category = caf::atom("trellis");

inline caf::error to_caf_error(const error& e) {
  return caf::error{static_cast<std::uint8_t>(e.code()), trellis_error_category, caf::make_message(e.message())};
}

/// Maps back. A request's timeout becomes `timeout`; CAF's other errors (a
/// dead actor) become `shutting_down` with CAF's text (`rendered`), since
/// they only happen while the process stops.
error from_caf_error(const caf::error& e, const std::string& rendered);

}  // namespace trellis::detail
