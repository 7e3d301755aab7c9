// A program outside the Trellis tree, built against an installed Trellis by
// tests/install/install_test.sh (once with find_package, once with
// pkg-config). docs/install.md quotes it between the [consumer] markers.
//
// Usage: consumer STORE_FILE   prints the version and the chain's result.

// [consumer]
#include <trellis/trellis.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer STORE_FILE\n";
    return 2;
  }
  trellis::task_registry tasks;
  auto add = tasks.add("add", [](trellis::task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto times = tasks.add("times", [](trellis::task_context&, std::int64_t x, std::int64_t y) { return x * y; });

  trellis::engine_config cfg;
  cfg.store_path = argv[1];
  trellis::engine engine{cfg, tasks};

  // add(2, 3) = 5, then times(5, 10) = 50
  auto run = engine.submit(trellis::chain(add.with(2, 3), times.with(10)));
  if (!run) {
    std::cerr << to_string(run.error()) << '\n';
    return 1;
  }
  auto result = run->wait_for(std::chrono::seconds{30});
  if (!result) {
    std::cerr << to_string(result.error()) << '\n';
    return 1;
  }
  std::cout << "trellis " << TRELLIS_VERSION << " result: " << to_json(*result) << '\n';
  return result->as<std::int64_t>() == 50 ? 0 : 1;
}
// [consumer]
