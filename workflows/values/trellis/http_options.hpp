#pragma once

/// @file
/// The HTTP endpoint of a long-running process (docs/operations.md "HTTP"):
/// `/metrics`, `/healthz`, `/readyz`, the JSON API and the dashboard. Off
/// unless an address is given.

#include <string>

namespace trellis {

struct http_options {
  /// "HOST:PORT" to listen on, e.g. "127.0.0.1:9100" (port 0: any free
  /// port, announced in the log); empty: no HTTP endpoint. A host other
  /// than a loopback one (127.0.0.0/8, ::1, localhost) needs `token`.
  std::string listen;
  /// The bearer token (`Authorization: Bearer TOKEN`) the mutating
  /// endpoints (revoke, dead-letter replay) require; empty: none. A secret:
  /// never printed.
  std::string token;
};

}  // namespace trellis
