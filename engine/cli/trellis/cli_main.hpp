#pragma once

/// @file
/// The command-line front end every Trellis binary shares. An application
/// registers its handlers and hands over `main`'s arguments:
///
/// @code
/// int main(int argc, char** argv) {
///   trellis::task_registry tasks;
///   register_my_tasks(tasks);
///   return trellis::cli_main(argc, argv, std::move(tasks));
/// }
/// @endcode
///
/// Commands (docs/cli.md is the contract):
///   run FILE [--db PATH]        run a workflow file embedded; print the outcome line
///   resume --db PATH            finish every unfinished workflow in the store
///   (run, resume and dlq replay take --concurrency N: handler threads)
///   status ID --db PATH         state, result, error and nodes of a workflow
///   dlq list --db PATH          dead letters, one JSON object per line
///   dlq replay ID --db PATH     run a dead-lettered node again; print the outcome line
///   worker --broker URL         cluster mode: run handlers until SIGTERM (docs/cluster.md)
///   dispatcher --broker URL --db PATH   cluster mode: own the store, take submissions
///   submit FILE --broker URL [--wait]   cluster mode: submit over NATS
///   status, dlq list, dlq replay with --broker URL instead of --db: ask the
///                               running dispatcher (docs/cluster.md "Control")
///   inspect --broker URL [--timeout-ms MS]   live workers and dispatchers, JSON lines
///   metrics --broker URL [--timeout-ms MS]   every live process's metrics, Prometheus text
///   revoke ID --broker URL      end a running workflow as FAILURE/revoked
///
/// Exit codes: 0 success, 1 a workflow failed, 2 bad input (usage, workflow
/// file, unknown id), 3 the store cannot be used (corrupt, locked, I/O),
/// 4 the broker cannot be reached or did not answer (cluster commands),
/// 5 a `worker --pool process` whose process pool died (docs/operations.md,
/// "Process pool"), 143 stopped by SIGTERM/SIGINT after draining (finish
/// with `resume`).

#include "trellis/task.hpp"

namespace trellis {

/// Runs the command in `argv` with the handlers in `tasks`; returns the exit code.
int cli_main(int argc, char** argv, task_registry tasks);

/// A cluster worker binary in one call: `cli_main` with the `worker` command
/// put in front of `argv`'s arguments (`--broker URL [--queues a,b]
/// [--concurrency N] [--pool thread|process] [--namespace NS]`, see
/// docs/cluster.md). Runs until SIGTERM or SIGINT, then drains; returns the
/// exit code. `--pool process` forks the process pool's zygote at once, so
/// call it before your binary starts any thread (it refuses otherwise).
int worker_main(int argc, char** argv, task_registry tasks);

}  // namespace trellis
