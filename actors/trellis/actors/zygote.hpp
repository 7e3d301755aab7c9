#pragma once

/// @file
/// The zygote of a process pool (process_pool.hpp): a single-threaded copy
/// of the worker process, forked before the worker starts any thread, that
/// forks the handler children. A threaded process must not fork (another
/// thread may hold the allocator's lock or a library's mutex at that
/// instant, and the child would deadlock on it), so the worker never forks
/// once started: every child, first or replacement, comes from the zygote,
/// which holds the task registry (copied by its fork) and nothing else.
///
/// The zygote and the worker talk over a SOCK_SEQPACKET control socket in
/// fixed-size `control_message`s. For each `spawn` the zygote makes a
/// socketpair, forks a child that serves one end (child_protocol.hpp:
/// one call in, one reply out, until end of file) and passes the other end
/// to the worker with SCM_RIGHTS. The zygote is the children's parent, so
/// it reaps them and reports every exit with its wait status; it kills a
/// child only on request and only while it is unreaped, so a kill never hits
/// a recycled pid.
///
/// Nothing outlives the worker: the zygote and every child set
/// PR_SET_PDEATHSIG to SIGKILL (and check getppid() after it, for a parent
/// that died before), the zygote kills its children when the control socket
/// closes, and a child exits at end of file on its socket.

#include "trellis/task.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <sys/types.h>

namespace trellis::detail {

/// What a control message asks or tells.
enum class control_kind : std::uint32_t {
  /// Worker -> zygote: fork a child for request `request`.
  spawn = 1,
  /// Worker -> zygote: SIGKILL child `pid` if it is still unreaped.
  kill = 2,
  /// Zygote -> worker: child `pid` forked for `request`; the message
  /// carries the worker's end of its socket (SCM_RIGHTS).
  spawned = 3,
  /// Zygote -> worker: child `pid` was reaped with wait status `status`.
  exited = 4,
  /// Zygote -> worker: request `request` failed; `status` is the errno.
  spawn_failed = 5,
};

/// One message on the control socket, sent and read whole (SOCK_SEQPACKET).
struct control_message {
  control_kind kind = control_kind::spawn;
  std::int32_t pid = 0;
  std::int32_t status = 0;
  std::uint64_t request = 0;
};

/// The handler limits a child enforces on its own replies.
struct child_limits {
  /// The largest frame (body) either side reads or writes.
  std::size_t max_frame_bytes = 0;
  /// A result beyond this is replied as `rejected`/"payload_too_large".
  std::size_t max_result_bytes = 0;
};

/// A forked zygote, seen from the worker.
struct zygote_process {
  pid_t pid = -1;
  /// The worker's end of the control socket (close-on-exec).
  int control_fd = -1;
};

/// How many threads the calling process has (/proc/self/task); 0 if it
/// cannot be read.
std::size_t thread_count();

/// Forks the zygote. Errors: `invalid_config` when the process already has
/// more than one thread (a fork would copy another thread's locks; start
/// the process pool before anything starts a thread), `task_failed` when
/// socketpair or fork fail (errno named).
expected<zygote_process> fork_zygote(std::shared_ptr<const task_registry> tasks, child_limits limits);

/// A wait status as a sentence fragment: "killed by
/// SIGSEGV", "exited with status 3".
std::string describe_wait_status(int status);

}  // namespace trellis::detail
