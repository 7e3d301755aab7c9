#pragma once

/// @file
/// Internal to the facades: the HTTP endpoint of a cluster process
/// (`worker --http`, `dispatcher --http`, `trellis dashboard --http`): the
/// namespace's API, events and dashboard (namespace_operator.hpp), with
/// the process's own metrics and readiness where it has them.

#include "trellis/cluster_node.hpp"
#include "trellis/error.hpp"
#include "trellis/http/http_server.hpp"
#include "trellis/metrics_format.hpp"
#include "trellis/value.hpp"

#include <functional>
#include <memory>
#include <string>

namespace trellis::detail {

/// Connects the namespace operator and starts the server on
/// `opts.http`. `own_metrics` and `readiness` replace the namespace's
/// (empty: the namespace's, as `trellis dashboard` serves them). `role`
/// names the process in the log. Errors: `invalid_config` (the address),
/// those of connecting.
expected<std::unique_ptr<http_server>> start_cluster_http(const cluster_options& opts, const std::string& role,
                                                          std::function<std::string(metrics_format)> own_metrics,
                                                          std::function<value()> readiness);

}  // namespace trellis::detail
