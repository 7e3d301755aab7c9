#include "trellis/transport/partition.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using trellis::detail::partition_of;

TEST_CASE("partition_of is FNV-1a 64 of the id modulo the count", "[unit]") {
  // Part of the wire layout: these values must never change.
  CHECK(partition_of("", 7) == static_cast<int>(14695981039346656037ULL % 7));
  CHECK(partition_of("a", 1000) == static_cast<int>(0xaf63dc4c8601ec8cULL % 1000));
}

TEST_CASE("partition_of with one partition, or a count below one, is always 0", "[unit]") {
  CHECK(partition_of("wf-1", 1) == 0);
  CHECK(partition_of("wf-1", 0) == 0);
  CHECK(partition_of("wf-1", -3) == 0);
}

TEST_CASE("partition_of spreads workflow ids over every partition", "[unit]") {
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) {
    int p = partition_of("wf-" + std::to_string(i), 4);
    REQUIRE(p >= 0);
    REQUIRE(p < 4);
    seen.insert(p);
  }
  CHECK(seen.size() == 4);
}

TEST_CASE("event_partition_of sends outcomes naming no workflow to partition 0, others to their owner", "[unit]") {
  using trellis::detail::event_partition_of;
  CHECK(event_partition_of("", 7) == 0);
  for (int i = 0; i < 50; ++i) {
    auto id = "wf-" + std::to_string(i);
    CHECK(event_partition_of(id, 7) == partition_of(id, 7));
  }
}
