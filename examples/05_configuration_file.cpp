// 05: a worker configured from a file.
//
// A worker binary takes every setting from a config file as well as from
// flags and TRELLIS_* environment variables (docs/cluster.md
// "Configuration"). For each setting the flag wins over the variable, the
// variable over the file, and the file over the default, so one file can hold
// what every process shares and a flag or variable changes one process:
//
//   example_05_configuration_file --config examples/05_worker.toml
//   TRELLIS_CONFIG=examples/05_worker.toml example_05_configuration_file      # the same
//   TRELLIS_BROKER=nats://127.0.0.1:4333 example_05_configuration_file --config examples/05_worker.toml --concurrency 2
//
// The last one connects to port 4333 (the variable over the file's broker)
// with 2 handler threads (the flag over the file's 4), and takes the file's
// namespace "reports" and queue "reports". examples/05_report.json routes its
// tasks to that queue. ctest runs the last command against a fresh cluster
// (examples/run_cluster_example.sh) and checks with `trellis inspect` that
// the worker runs with those settings.

#include <trellis/trellis.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  trellis::task_registry tasks;
  tasks.add("count_words", [](trellis::task_context&, std::string text) {
    std::istringstream words{text};
    std::int64_t n = 0;
    for (std::string word; words >> word;) {
      ++n;
    }
    return n;
  });
  tasks.add("sum_counts", [](trellis::task_context&, std::vector<std::int64_t> counts) {
    std::int64_t total = 0;
    for (auto n : counts) {
      total += n;
    }
    return total;
  });
  return trellis::worker_main(argc, argv, std::move(tasks));
}
