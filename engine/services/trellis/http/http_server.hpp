#pragma once

/// @file
/// The HTTP endpoint of a long-running process (docs/operations.md "HTTP",
/// decision 0030): cpp-httplib serving an `operator_api` on its own threads.
///
/// | method, path                         | answer                                           |
/// |--------------------------------------|--------------------------------------------------|
/// | GET  /healthz                        | 200 {"status":"ok"} while the process runs       |
/// | GET  /readyz                         | 200 or 503 with {ready, checks}                  |
/// | GET  /metrics                        | Prometheus text; OpenMetrics when the `Accept` header asks for it or `?format=openmetrics` |
/// | GET  /api/workflows?state=&limit=&cursor= | {workflows, next}, newest first             |
/// | POST /api/workflows?key=K            | body: a workflow file's JSON; {id} once committed |
/// | GET  /api/workflows/ID               | the workflow's graph document                    |
/// | POST /api/workflows/ID/revoke        | body {"node"?: N, "terminate"?: bool}; the revoke answer |
/// | GET  /api/queues, /api/workers, /api/dead-letters, /api/schedules | JSON arrays         |
/// | POST /api/dead-letters/ID/replay     | body {"partition"?: P}; {id} of the reopened workflow |
/// | GET  /api/events                     | task events as server-sent events                |
/// | GET  /, /app.js, /app.css            | the dashboard, built into the binary             |
///
/// Errors are JSON {"error": {"type", "message"}} with a status from the
/// error's type (400 bad input, 401 no token, 404 not found, 409 finished
/// already, 503 broker or store away, 504 timeout). A POST needs
/// `Content-Type: application/json` (a browser cannot send that across
/// sites without a CORS preflight, which is never granted) and, when a
/// token is configured, `Authorization: Bearer TOKEN`.

#include "trellis/error.hpp"
#include "trellis/http/operator_api.hpp"
#include "trellis/http_options.hpp"

#include <memory>
#include <string>

namespace trellis::detail {

/// A listen address split and checked.
struct listen_address {
  std::string host;
  int port = 0;
  bool loopback = false;
};

/// Parses "HOST:PORT" ("[::1]:PORT" for IPv6). `invalid_config` for a bad
/// address or port (0 to 65535), and for a host off loopback when `opts`
/// has no token: anyone who reaches it could revoke workflows.
expected<listen_address> check_http_options(const http_options& opts);

class http_server {
 public:
  /// Checks `opts`, binds and starts serving. `process` names the process
  /// in the log line that announces the address. Errors: `invalid_config`
  /// (see `check_http_options`; also an address that cannot be bound).
  static expected<std::unique_ptr<http_server>> start(const http_options& opts, operator_api api,
                                                      const std::string& process);

  /// Stops as `stop`.
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The port it listens on (the one chosen when asked for port 0).
  int port() const noexcept;

  /// Stops listening, ends the event streams and joins the server thread.
  /// Idempotent.
  void stop();

 private:
  struct impl;
  explicit http_server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace trellis::detail
