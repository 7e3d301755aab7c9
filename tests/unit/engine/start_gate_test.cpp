// The start gate of rate limits: the reservation rule (the later of now and
// the next free slot, then one interval on), even spacing whichever thread
// reserves, and names kept apart.

#include "trellis/transport/start_gate.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

TEST_CASE("the start gate spaces the starts of one name evenly and leaves other names alone",
          "[unit][rate-limit][start-gate]") {
  trellis::detail::start_gate gate;
  // Six starts asked for at the same moment: one every 50 ms from now.
  for (std::int64_t i = 0; i < 6; ++i) {
    CHECK(gate.reserve("noop", 50'000, 1'000'000) == 1'000'000 + i * 50'000);
  }
  // Another name has its own slots; a later request after an idle spell starts at once.
  CHECK(gate.reserve("other", 50'000, 1'000'000) == 1'000'000);
  CHECK(gate.reserve("noop", 50'000, 9'000'000) == 9'000'000);
  CHECK(gate.reserve("noop", 50'000, 9'000'001) == 9'050'000);
  // The rule alone: a slot far in the past counts as free now.
  CHECK(trellis::detail::reserve_slot(5, 100, 10).start_us == 100);
  CHECK(trellis::detail::reserve_slot(5, 100, 10).next_us == 110);
}

TEST_CASE("threads reserving at once from one gate get distinct slots one interval apart",
          "[unit][rate-limit][start-gate]") {
  trellis::detail::start_gate gate;
  std::mutex mutex;
  std::vector<std::int64_t> slots;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) {
        auto slot = gate.reserve("noop", 1'000, 0);
        std::lock_guard<std::mutex> guard{mutex};
        slots.push_back(slot);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::sort(slots.begin(), slots.end());
  REQUIRE(slots.size() == 1000);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    REQUIRE(slots[i] == static_cast<std::int64_t>(i) * 1'000);
  }
}
