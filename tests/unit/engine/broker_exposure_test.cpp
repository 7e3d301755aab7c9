// Which brokers a worker or dispatcher may use unprotected: loopback in
// every URL form NATS takes, and anything else only with authentication,
// signing or --insecure.

#include "trellis/transport/broker_exposure.hpp"

#include <catch2/catch.hpp>

using trellis::detail::broker_protection;
using trellis::detail::broker_url_has_credentials;
using trellis::detail::check_broker_exposure;
using trellis::detail::is_loopback_broker;

TEST_CASE("Loopback brokers are recognised in every URL form, and nothing else is", "[unit]") {
  for (const char* url :
       {"nats://127.0.0.1:4222", "127.0.0.1:4222", "nats://127.1.2.3", "tls://localhost:4443", "LOCALHOST:4222",
        "nats://[::1]:4222", "[::1]", "nats://alice:pw@127.0.0.1:4222", "nats://127.0.0.1:4222/"}) {
    INFO(url);
    CHECK(is_loopback_broker(url));
  }
  for (const char* url :
       {"nats://10.0.0.5:4222", "nats://0.0.0.0:4222", "nats://128.0.0.1:4222", "nats://localhost.example.com:4222",
        "nats://nats.internal", "nats://[fd00::2]:4222", "nats://[::ffff:127.0.0.1]:4222",
        "nats://127.0.0.1@evil.example:4222", "", "nats://", "nats://[::1:4222", "nats://1270.0.0.1:4222"}) {
    INFO(url);
    CHECK_FALSE(is_loopback_broker(url));
  }
}

TEST_CASE("Credentials in a broker URL are seen; an @ after the path is not one", "[unit]") {
  CHECK(broker_url_has_credentials("nats://alice:pw@nats.internal:4222"));
  CHECK(broker_url_has_credentials("nats://s3cr3t@nats.internal"));
  CHECK_FALSE(broker_url_has_credentials("nats://nats.internal:4222"));
  CHECK_FALSE(broker_url_has_credentials("nats://@nats.internal:4222"));
  CHECK_FALSE(broker_url_has_credentials("nats://nats.internal:4222/a@b"));
}

TEST_CASE("A broker off loopback is refused unless authenticated, signed or insecure, naming the URL", "[unit]") {
  std::vector<std::string> urls{"nats://127.0.0.1:4222", "nats://10.0.0.5:4222"};
  auto refused = check_broker_exposure(urls, broker_protection{});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == trellis::errc::invalid_config);
  CHECK_THAT(refused.error().message(), Catch::Contains("nats://10.0.0.5:4222") && Catch::Contains("--insecure") &&
                                            Catch::Contains("--signing-key-file"));

  CHECK(check_broker_exposure({"nats://127.0.0.1:4222", "nats://localhost:4223"}, broker_protection{}));
  CHECK(check_broker_exposure(urls, broker_protection{true, false, false}));
  CHECK(check_broker_exposure(urls, broker_protection{false, true, false}));
  CHECK(check_broker_exposure(urls, broker_protection{false, false, true}));
  CHECK(check_broker_exposure({"nats://alice:pw@10.0.0.5:4222"}, broker_protection{}));
}
