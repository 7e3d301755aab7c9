#pragma once

/// @file
/// The text exposition formats of Trellis's metrics (`engine::metrics_text`,
/// `trellis metrics --format`; docs/operations.md, Metrics).

#include <cstdint>

namespace trellis {

enum class metrics_format : std::uint8_t {
  /// Prometheus text 0.0.4 (`text/plain; version=0.0.4`), the default.
  prometheus,
  /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`):
  /// counter families declared without `_total`, and `# EOF` at the end.
  openmetrics,
};

}  // namespace trellis
