// 06: submit to a running cluster from your own C++ program.
//
// `trellis::client` connects to the cluster's broker with the settings the
// command line takes (broker, namespace, credentials, TLS, signing key),
// submits workflows to the dispatcher and waits for them with the same
// handle API as the embedded engine (docs/cluster.md "C++ client"). The
// tasks run on the cluster's workers, so this program registers none: it
// names them. Against a cluster of the demo tasks:
//
//   nats-server -js -sd nats-store &
//   trellis-demo dispatcher --broker nats://127.0.0.1:4222 --db cluster.db &
//   trellis-demo worker --broker nats://127.0.0.1:4222 &
//   example_06_cluster_client nats://127.0.0.1:4222
//
// It submits a chain under a key, waits, prints the result, submits again
// with the same key and gets the same workflow back, not a second one. The
// last line is {"id":...,"result":8,"resubmitted":...,"same_workflow":true}.
// ctest runs exactly this through examples/run_cluster_example.sh.

#include <trellis/trellis.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  const char* env = std::getenv("TRELLIS_BROKER");
  std::string broker = argc > 1 ? argv[1] : env != nullptr ? env : "nats://127.0.0.1:4222";

  // [connect]
  trellis::client_options opts;
  opts.broker_urls = {broker};
  opts.ns = "default";
  // With a secured cluster: opts.user/password, opts.token, opts.creds_file,
  // opts.tls_ca_file, opts.signing_key_file, as `trellis submit` takes them.
  auto client = trellis::client::connect(opts);
  if (!client) {
    std::cerr << "cannot connect: " << to_string(client.error()) << '\n';
    return 1;
  }
  // [connect]

  // [submit]
  // add(2, 2), then add(4) to that: 8. The key makes the submission
  // idempotent: the workflow id is derived from it.
  auto flow = trellis::chain(trellis::signature{"add", {2, 2}}, trellis::signature{"add", {4}});
  auto run = (*client)->submit(flow, std::string{"invoice-2024-0042"});
  if (!run) {
    std::cerr << "submit failed: " << to_string(run.error()) << '\n';
    return 1;
  }
  auto result = run->wait_for(std::chrono::seconds{30});
  if (!result) {
    // workflow_failed (details in run->error_details()), revoked or timeout.
    std::cerr << "workflow " << run->id() << ": " << to_string(result.error()) << '\n';
    return 1;
  }
  std::cout << "workflow " << run->id() << " gave " << to_json(*result) << '\n';

  // The same key again (a retry after a crash, say): the same workflow, not a second one.
  auto again = (*client)->submit(flow, std::string{"invoice-2024-0042"});
  if (!again) {
    std::cerr << "second submit failed: " << to_string(again.error()) << '\n';
    return 1;
  }
  std::cout << "resubmitted with the same key: workflow " << again->id() << '\n';
  // [submit]

  bool same = again->id() == run->id() && again->wait_for(std::chrono::seconds{30}).value() == *result;
  std::cout << "{\"id\":\"" << run->id() << "\",\"result\":" << to_json(*result) << ",\"resubmitted\":\""
            << again->id() << "\",\"same_workflow\":" << (same ? "true" : "false") << "}" << std::endl;
  return same && *result == trellis::value(8) ? 0 : 1;
}
