// 01: typed handlers, a chain into a chord, and waiting for the result.
//
//   add(2, 2) --> add(_, 1) --+--> xsum([5, 6]) = 11
//             \-> add(_, 2) --+
//
// It exits non-zero if the answer is wrong. README.md quotes it between the
// [readme] markers (scripts/check_quotes.py keeps the two equal).

// [readme]
#include <trellis/trellis.hpp>

#include <iostream>

int main() {
  trellis::task_registry tasks;
  auto add = tasks.add("add", [](trellis::task_context&, std::int64_t x, std::int64_t y) { return x + y; });
  auto xsum = tasks.add("xsum", [](trellis::task_context&, std::vector<std::int64_t> xs) {
    std::int64_t total = 0;
    for (auto x : xs) {
      total += x;
    }
    return total;
  });

  trellis::engine_config cfg;
  cfg.store_path = ":memory:";  // a file path makes it survive a crash
  trellis::engine engine{cfg, tasks};

  // add(2, 2) = 4; then add(4, 1) and add(4, 2) side by side; then xsum([5, 6]) = 11
  auto flow = trellis::chain(add.with(2, 2), trellis::chord({add.with(1), add.with(2)}, xsum.with()));
  auto run = engine.submit(flow);
  if (!run) {
    std::cerr << to_string(run.error()) << '\n';
    return 1;
  }
  auto result = run->wait_for(std::chrono::seconds{10});
  if (!result) {
    std::cerr << to_string(result.error()) << '\n';
    return 1;
  }
  std::cout << "result: " << to_json(*result) << '\n';
  return result->as<std::int64_t>() == 11 ? 0 : 1;
}
// [readme]
