// An unprotected broker off loopback: a worker and a dispatcher refuse it
// with exit 2 before connecting, and run on it with --insecure or signed
// messages. The server listens on every interface and the processes reach
// it through this machine's own non-loopback address, so the broker is
// real and really off loopback.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/chain_check.hpp"
#include "support/child_process.hpp"
#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/temp_dir.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

namespace {

using trellis::test::check_chain_runs;
using trellis::test::cluster_processes;
using trellis::test::nats_server;
using trellis::test::nats_server_options;
using trellis::test::temp_dir;

/// This machine's first IPv4 address that is not loopback, or "".
std::string own_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return "";
  }
  std::string out;
  for (auto* a = list; a != nullptr && out.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) {
      continue;
    }
    auto addr = reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr;
    if ((ntohl(addr.s_addr) >> 24) == 127) {
      continue;
    }
    char text[INET_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET, &addr, text, sizeof text) != nullptr) {
      out = text;
    }
  }
  freeifaddrs(list);
  return out;
}

/// A nats-server on every interface (the fixture binds 127.0.0.1; a later
/// -a wins).
nats_server_options on_every_interface() {
  nats_server_options o;
  o.extra_args = {"-a", "0.0.0.0"};
  return o;
}

}  // namespace

TEST_CASE(
    "A worker and a dispatcher refuse an unprotected broker off loopback with exit 2 naming it, and run on it "
    "with --insecure or with signed messages",
    "[integration][nats]") {
  auto address = own_address();
  if (address.empty()) {
    WARN("this machine has no IPv4 address but loopback: nothing off loopback to test against");
    return;
  }
  nats_server server{on_every_interface()};
  auto url = "nats://" + address + ":" + std::to_string(server.port());
  temp_dir dir;

  for (std::vector<std::string> argv :
       {std::vector<std::string>{TRELLIS_DEMO_BIN, "worker"},
        std::vector<std::string>{TRELLIS_DEMO_BIN, "dispatcher", "--db", dir.file("refused.db")}}) {
    argv.insert(argv.end(), {"--broker", url});
    INFO(argv[1]);
    auto r = trellis::test::run_command(argv, dir.file(argv[1]), trellis::test::max_test_wait);
    INFO("stderr:\n" << r.err);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("broker " + url + " is not on loopback") && Catch::Contains("--insecure"));
    CHECK(r.out.empty());
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("refused.db")));  // refused before the store was made

  SECTION("--insecure accepts the risk") {
    auto c = cluster_processes::on_broker(url, "insecure", {}, {"--insecure"});
    c.start_dispatcher(c.db());
    c.start_worker({"--concurrency", "2"});
    check_chain_runs(c);
  }
  SECTION("signed messages protect the traffic") {
    auto key = trellis::test::write_file(dir, "signing.key", std::string(40, 'k') + "\n");
    auto c = cluster_processes::on_broker(url, "signed", {}, {}, {"TRELLIS_SIGNING_KEY_FILE=" + key});
    c.start_dispatcher(c.db());
    c.start_worker({"--concurrency", "2"});
    check_chain_runs(c);
  }
}
