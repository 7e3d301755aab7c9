#pragma once

/// @file
/// Internal to the facades: the documents the HTTP API answers that are
/// built from what a process knows rather than read from a store (see
/// http/operator_api.hpp): a worker's `inspect` answer and the queue rows.

#include "trellis/actors/worker_activity.hpp"
#include "trellis/value.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// A worker's answer to `inspect` (docs/cli.md "Inspect"): who it is, what
/// it serves (queues and registered tasks), what it runs now. `role` is
/// "worker", or "embedded" for an embedded engine's pool.
value worker_inspect_answer(const std::string& name, const std::vector<std::string>& queues,
                            const std::vector<std::string>& tasks, const worker_activity& activity,
                            const char* role = "worker");

/// `GET /api/queues` from Prometheus text (one process's, or several merged):
/// one row per queue label, sorted by queue, {queue, depth, published,
/// succeeded, failed, retried, dead_letters}: counters summed over tasks and
/// processes, the depth the largest any process reported (every dispatcher
/// of a namespace reads the same stream). Lines it cannot read are skipped.
value::array queue_rows(std::string_view prometheus_text);

}  // namespace trellis::detail
