#pragma once

/// @file
/// The demo tasks behind `trellis-demo` and the CLI tests: small, pure
/// handlers whose answers are easy to check against Celery's.
///
///   add(x, y) -> x + y            mul(x, y) -> x * y
///   xsum(values) -> sum           identity(value) -> value
///   split(n) -> replaces itself with a group of identity(i) for i in 0..n-1: [0, ..., n-1]
///   noop() -> null                sleep_ms(ms) -> ms (after sleeping; at a soft time limit it
///                                   wakes early and fails with soft_time_limit_exceeded)
///   spin(ms) -> ms (after busy-waiting, never looking at cancellation: only a hard time limit ends it)
///   fail(message) -> always fails with `message`
///   flaky(failures, error_type="") -> fails its first `failures` attempts, then returns the
///     attempt number; the failures are `task_error`s of `error_type` when it is given
///     (std::runtime_error otherwise)
///   touch(path) -> appends a line to the file, returns its line count
///   stamp(path) -> appends the time it started (microseconds since the epoch) as a line to the
///     file and returns it (for the rate-limit tests)
///   crash_worker() -> kills its own process with SIGKILL (for the cluster "worker lost" test)
///   crash(how) -> crashes its process: how "abort" calls std::abort, "segv" raises SIGSEGV
///     (for the process pool: only the handler's child dies)
///   report_and_wait(steps, gate) -> steps + 1, reporting progress and custom states
///     (WAITING, then FINISHING) while it waits for the file `gate` to exist
///   blob(bytes) -> a string of `bytes` bytes    measure(values) -> their total length
///   (the last two for large values: tests and bench/)

#include <trellis/trellis.hpp>

namespace trellis::demo {

/// Registers every demo task in `tasks`.
void register_demo_tasks(task_registry& tasks);

}  // namespace trellis::demo
