#pragma once

/// @file
/// What `trellis inspect` adds to the answers of live processes: the task
/// subjects holding messages that no live worker reads (decision 0022).
/// Such tasks wait in the stream, not dead-lettered, until a worker that
/// registered them comes; inspect prints one line for each.

#include "trellis/transport/nats_census.hpp"
#include "trellis/value.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace trellis::cli {

/// Tasks of one queue that no live worker serves.
struct unserved_task {
  std::string queue;
  /// The task's name when a worker announced it (it may serve another
  /// queue), else its token in the subject (the name itself for most
  /// names; `~` and a hash for the others).
  std::string task;
  /// Messages on its subject; a pack of tasks counts once.
  std::uint64_t messages = 0;
};

/// The entries of `census` that none of `answers` serves. A worker answer
/// (`role` "worker") serves a subject when it serves the queue (`all_queues`
/// true, or the queue in `queues`) and lists the task in `tasks`; an answer
/// without `tasks` (a release before 0022) serves every task of its queues.
/// In census order.
std::vector<unserved_task> unserved_tasks(const std::vector<value::map>& answers,
                                          const std::vector<detail::queued_subject>& census);

/// The JSON line of one: `{"messages":N,"queue":Q,"role":"unserved","task":T}`.
value unserved_line(const unserved_task& t);

}  // namespace trellis::cli
