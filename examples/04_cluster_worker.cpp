// 04: a cluster worker binary in one call.
//
// Register your handlers and hand `main`'s arguments to
// `trellis::worker_main`: the binary is a cluster worker that takes tasks from
// NATS JetStream until SIGTERM or SIGINT, then drains (docs/cluster.md). A
// dispatcher owns the store and a client submits; both are the generic
// `trellis` binary, since neither runs handlers:
//
//   nats-server -js -sd nats-store &
//   trellis dispatcher --broker nats://127.0.0.1:4222 --db cluster.db &
//   example_04_cluster_worker --broker nats://127.0.0.1:4222 &
//   trellis submit examples/04_invoice.json --broker nats://127.0.0.1:4222 --wait
//
// The last command prints {"id":...,"state":"SUCCESS","result":1900,"error":null}.
// ctest runs exactly this through examples/run_cluster_example.sh.

#include <trellis/trellis.hpp>

#include <cstdint>
#include <vector>

int main(int argc, char** argv) {
  trellis::task_registry tasks;
  tasks.add("price_line", [](trellis::task_context&, std::int64_t quantity, std::int64_t unit_cents) {
    return quantity * unit_cents;
  });
  tasks.add("invoice_total", [](trellis::task_context&, std::vector<std::int64_t> line_cents) {
    std::int64_t total = 0;
    for (auto cents : line_cents) {
      total += cents;
    }
    return total;
  });
  return trellis::worker_main(argc, argv, std::move(tasks));
}
