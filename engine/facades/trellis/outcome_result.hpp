#pragma once

/// @file
/// What waiting for a finished workflow returns, one way for the embedded
/// engine's `workflow_handle` and the cluster client's `client_handle`:
/// the result on SUCCESS, else an error naming the failed task.

#include "trellis/error.hpp"
#include "trellis/value.hpp"
#include "trellis/workflow_outcome.hpp"

namespace trellis::detail {

/// SUCCESS: `o.result`. FAILURE: `errc::workflow_failed`, REVOKED:
/// `errc::revoked`, each with the message "workflow ID FAILURE: task 'T'
/// failed: TYPE: MESSAGE" (no task for a whole revoked workflow).
expected<value> outcome_result(const workflow_outcome& o);

}  // namespace trellis::detail
