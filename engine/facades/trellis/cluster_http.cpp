#include "trellis/cluster_http.hpp"

#include "trellis/namespace_operator.hpp"

#include <utility>

namespace trellis::detail {

expected<std::unique_ptr<http_server>> start_cluster_http(const cluster_options& opts, const std::string& role,
                                                          std::function<std::string(metrics_format)> own_metrics,
                                                          std::function<value()> readiness) {
  // The address first: a bad one is refused before anything connects.
  if (auto address = check_http_options(opts.http); !address) {
    return address.error();
  }
  auto ns = namespace_operator::connect(opts, "trellis-" + role + "-http");
  if (!ns) {
    return ns.error();
  }
  auto api = (*ns)->api();
  if (own_metrics) {
    api.metrics = std::move(own_metrics);
  }
  if (readiness) {
    api.readiness = std::move(readiness);
  }
  return http_server::start(opts.http, std::move(api), role);
}

}  // namespace trellis::detail
