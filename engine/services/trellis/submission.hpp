#pragma once

/// @file
/// The submit envelope of a workflow, built one way for every submitter
/// (the embedded engine, the cluster client, the CLI's file check), under
/// an id made one way.

#include <optional>
#include <string>

#include "trellis/canvas.hpp"
#include "trellis/envelope.hpp"
#include "trellis/error.hpp"

namespace trellis::detail {

/// A new random workflow id: 32 hex digits (128 bits, so two submitters
/// never pick the same one).
std::string new_workflow_id();

/// The workflow id of a submission keyed `key` in namespace `ns`: the first
/// 32 hex digits of SHA-256("trellis-submit-key", ns, key), each part
/// length-prefixed, so the same namespace and key always give the same id
/// (and so the same partition and dispatcher), in the format of
/// `new_workflow_id`. `trellis::client::submit` and `trellis submit --key`
/// use it (docs/decisions/0025-public-cluster-client.md).
std::string workflow_id_for_key(const std::string& ns, const std::string& key);

/// The submit envelope of `flow` under `workflow_id`, stamped now, with
/// `submit_key` (the first submission with a key wins) when given.
envelope submission_envelope(const std::string& workflow_id, const canvas& flow,
                             const std::optional<std::string>& submit_key = std::nullopt);

/// Nothing, or `invalid_workflow` naming the first step of `flow` that sets
/// a priority when the transport cannot honour one (`honoured` false:
/// cluster mode): the option is refused, never silently ignored.
expected<void> check_priorities_honoured(const canvas& flow, bool honoured);

/// `e` encoded, or `payload_too_large` when it is over `max_bytes`
/// (`canvas_limits::max_submission_bytes`): the dispatcher would refuse it,
/// so it is refused before anything is sent or stored, naming the size,
/// the limit and the remedy.
expected<std::string> encode_submission(const envelope& e, std::size_t max_bytes);

}  // namespace trellis::detail
