#include "trellis/transport/broker_exposure.hpp"

#include <algorithm>
#include <cctype>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace trellis::detail {

namespace {

/// The URL without its scheme (`nats://`).
std::string without_scheme(const std::string& url) {
  auto scheme = url.find("://");
  return scheme == std::string::npos ? url : url.substr(scheme + 3);
}

/// `user:pass@host:port/...` -> the authority's part before the host, if any.
std::string::size_type credentials_end(const std::string& rest) {
  auto authority_end = rest.find('/');
  auto at = rest.rfind('@', authority_end == std::string::npos ? std::string::npos : authority_end);
  if (at != std::string::npos && authority_end != std::string::npos && at > authority_end) {
    return std::string::npos;
  }
  return at;
}

/// The host of a URL, lower case, without brackets.
std::string host_of(const std::string& url) {
  auto rest = without_scheme(url);
  if (auto at = credentials_end(rest); at != std::string::npos) {
    rest = rest.substr(at + 1);
  }
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    host = close == std::string::npos ? std::string{} : rest.substr(1, close - 1);
  } else {
    host = rest.substr(0, rest.find_first_of(":/"));
  }
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return host;
}

}  // namespace

bool is_loopback_broker(const std::string& url) {
  auto host = host_of(url);
  if (host == "localhost") {
    return true;
  }
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  }
  return false;
}

bool broker_url_has_credentials(const std::string& url) {
  auto at = credentials_end(without_scheme(url));
  return at != std::string::npos && at > 0;
}

expected<void> check_broker_exposure(const std::vector<std::string>& urls, const broker_protection& protection) {
  if (protection.insecure || protection.signed_messages) {
    return {};
  }
  for (const auto& url : urls) {
    if (is_loopback_broker(url) || protection.authenticated || broker_url_has_credentials(url)) {
      continue;
    }
    return error{errc::invalid_config,
                 "broker " + url +
                     " is not on loopback, and neither NATS authentication (--user with --password-file, "
                     "--token-file, --creds or --tls-cert) nor message signing (--signing-key-file) is set: "
                     "anyone who can publish on it could make workers run any task; set one, or pass --insecure "
                     "to accept that (docs/cluster.md, Security)"};
  }
  return {};
}

}  // namespace trellis::detail
