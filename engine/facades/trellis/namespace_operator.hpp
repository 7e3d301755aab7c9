#pragma once

/// @file
/// Internal to the facades: the HTTP API of a whole cluster namespace,
/// answered over the broker (docs/operations.md "HTTP"). `trellis
/// dashboard` serves it; so do a worker's and a dispatcher's `--http`,
/// beside their own metrics and health.
///
/// Workflows, graphs, revokes and dead letters go to the dispatcher owning
/// them (a `trellis::client`); workers and queues come from every live
/// process's `inspect` and `metrics` answers; task events from
/// `trellis.<ns>.lifecycle`.

#include "trellis/client.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/error.hpp"
#include "trellis/http/event_hub.hpp"
#include "trellis/http/operator_api.hpp"
#include "trellis/metrics_format.hpp"
#include "trellis/transport/cluster_bus.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace trellis::detail {

class namespace_operator : public std::enable_shared_from_this<namespace_operator> {
 public:
  /// How long `workers` and `namespace_metrics` collect answers.
  static constexpr std::chrono::milliseconds answer_window{400};

  /// Connects (a client and a bus of its own, named `name`) and follows the
  /// namespace's task events. Errors: those of `client::connect`.
  static expected<std::shared_ptr<namespace_operator>> connect(const cluster_options& opts, const std::string& name);

  /// Every function of the API; `metrics` and `readiness` are the
  /// namespace's (every live process's metrics merged, with a `process`
  /// label), which a worker or dispatcher replaces with its own.
  operator_api api();

  /// The metrics of every process that answers within `answer_window`,
  /// merged (as `trellis metrics --broker`).
  std::string namespace_metrics(metrics_format format);

  /// Every live process's `inspect` answer, workers first, then by name.
  expected<value> workers();

 private:
  namespace_operator() = default;
  /// Every live process's answer to `op` within `answer_window`, workers
  /// first, then by name; unreadable answers are logged and left out.
  expected<std::vector<value::map>> gather(control_op op);
  std::unique_ptr<client> client_;
  canvas_limits limits_;
  std::shared_ptr<cluster_bus> bus_;
  std::shared_ptr<event_hub> hub_ = std::make_shared<event_hub>();
};

}  // namespace trellis::detail
