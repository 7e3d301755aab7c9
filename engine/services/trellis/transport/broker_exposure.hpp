#pragma once

/// @file
/// Whether a cluster process may run against its broker unprotected.
///
/// On a broker without authentication, anyone who can publish on it can
/// make a worker run any registered task with any arguments, and a
/// dispatcher accept any workflow. On loopback only the machine's own users
/// can do that; off loopback, the network can. So a worker or dispatcher
/// refuses a broker off loopback unless the connection is authenticated or
/// messages are signed, or the operator says `--insecure` (docs/cluster.md,
/// "Security").

#include <string>
#include <vector>

#include "trellis/error.hpp"

namespace trellis::detail {

/// True when `url`'s host is a loopback address: `localhost`, `127.0.0.0/8`
/// or `::1`, in any of the URL forms NATS takes (`nats://h:p`, `tls://h`,
/// `h:p`, `nats://user:pass@h:p`, `[::1]:p`). Any other name is not,
/// since a name can resolve anywhere.
bool is_loopback_broker(const std::string& url);

/// True when `url` carries credentials itself (`nats://user:pass@host`,
/// `nats://token@host`).
bool broker_url_has_credentials(const std::string& url);

/// What protects a cluster process's traffic.
struct broker_protection {
  /// NATS authentication of any kind: user and password, token, creds file
  /// or TLS client certificate.
  bool authenticated = false;
  /// Every message signed and checked (HMAC).
  bool signed_messages = false;
  /// The operator accepts an unprotected broker off loopback.
  bool insecure = false;
};

/// `invalid_config` naming the first broker URL off loopback when nothing
/// protects the traffic (credentials in a URL count as authentication).
expected<void> check_broker_exposure(const std::vector<std::string>& urls, const broker_protection& protection);

}  // namespace trellis::detail
