#pragma once

/// @file
/// Which dispatcher partition owns a workflow. Every process of a namespace
/// (clients, workers, dispatchers) must agree on the partition count; the
/// owner of a workflow then follows from its id alone, with no lookup and no
/// coordination: clients submit to `trellis.<ns>.submit.<p>`, workers report
/// its outcomes on `trellis.<ns>.event.<p>`, and control requests about it go
/// to the dispatcher owning `p`.

#include <cstdint>
#include <string_view>

namespace trellis::detail {

/// The partition, in `[0, count)`, owning workflow `workflow_id`: FNV-1a
/// (64 bit) of the id modulo `count`. Stable across processes, builds and
/// machines, since it is part of the wire layout. `count` must be at least 1
/// (a smaller value is treated as 1).
inline int partition_of(std::string_view workflow_id, int count) noexcept {
  if (count <= 1) {
    return 0;
  }
  std::uint64_t hash = 14695981039346656037ULL;  // FNV offset basis
  for (unsigned char c : workflow_id) {
    hash ^= c;
    hash *= 1099511628211ULL;  // FNV prime
  }
  return static_cast<int>(hash % static_cast<std::uint64_t>(count));
}

/// The partition an outcome event goes to: the owner of `workflow_id`, and
/// partition 0 for an outcome that names no workflow (empty id: a task
/// message the worker could not read), whose owner dead-letters it.
inline int event_partition_of(std::string_view workflow_id, int count) noexcept {
  return workflow_id.empty() ? 0 : partition_of(workflow_id, count);
}

}  // namespace trellis::detail
