#pragma once

/// @file
/// Internal to the command line: the long-running commands that serve HTTP
/// (docs/cli.md "Serving"): `serve` runs an embedded engine until SIGTERM,
/// `dashboard` serves a cluster namespace's API and dashboard.

#include "trellis/cluster_node.hpp"
#include "trellis/engine.hpp"
#include "trellis/task.hpp"

#include <string>

namespace trellis::cli {

/// `serve --db PATH [--http ADDR]`: opens the store (finishing every
/// unfinished workflow in it, each announced as a log record), serves HTTP
/// when `cfg.http` says so, and runs until SIGTERM or SIGINT, then drains
/// and returns 143 (as a worker or dispatcher does). Returns 3 when the store fails while serving. The
/// signals must be blocked in every thread before the call.
int serve_embedded(const engine_config& cfg, task_registry tasks);

/// `dashboard --broker URL --http ADDR`: the namespace's API, task events
/// and dashboard over HTTP until SIGTERM or SIGINT; returns 143 then. Exit
/// codes as the other cluster commands when it cannot start. The signals
/// must be blocked as for `serve_embedded`.
int serve_dashboard(const detail::cluster_options& opts);

/// The bearer token of `--http-token-file FILE` (the file's first line),
/// else of `TRELLIS_HTTP_TOKEN` (the token itself), else empty. Throws
/// `setup_error` (`invalid_config`) for a file that cannot be read or is
/// empty; the token is never printed.
std::string http_token(const std::string& token_file);

}  // namespace trellis::cli
