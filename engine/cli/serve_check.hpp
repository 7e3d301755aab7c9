#pragma once

/// @file
/// Internal to the command line: the warning of `submit --wait` when no
/// live worker serves a task the workflow needs (docs/cli.md "Waiting").
/// Such a task waits in the stream until a worker that registered it and
/// serves its queue starts (decision 0022); the warning says so at once
/// instead of leaving the wait silent.

#include "trellis/canvas.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/task.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace trellis::cli {

/// A task the workflow will run, and where it is routed.
struct needed_task {
  std::string task;
  /// The signature's queue, else the registered task's (when this binary
  /// registers it); unset when only the dispatcher knows (a client
  /// without handlers): any worker registering the task may serve it.
  std::optional<std::string> queue;

  friend bool operator==(const needed_task& a, const needed_task& b) { return a.task == b.task && a.queue == b.queue; }
};

/// The distinct tasks of `flow`, in the order they first appear.
std::vector<needed_task> needed_tasks(const canvas& flow, const task_registry& tasks);

/// Those of `needs` that no worker answer of `inspect` (`role` "worker")
/// serves: its queues (or `all_queues`) hold the queue and its `tasks`
/// (absent: every task) the task.
std::vector<needed_task> unserved_needs(const std::vector<value::map>& answers, const std::vector<needed_task>& needs);

/// `trellis: warning: no live worker serves task T in queue Q; the workflow
/// waits for one` (`in any queue` when the queue is unknown).
std::string unserved_warning(const needed_task& t);

/// Asks every live process (inspect, answers within `window`) and prints a
/// warning on stderr for each needed task no live worker serves: at once
/// for those whose queue is known here, and for the others once the
/// dispatcher queued them on a subject no live worker reads (the task
/// stream's census, as `inspect` reads it). Prints why when it cannot ask;
/// never fails the command.
void warn_unserved(const detail::cluster_options& opts, const std::vector<needed_task>& needs,
                   std::chrono::milliseconds window);

}  // namespace trellis::cli
