#include "support/temp_dir.hpp"

#include "trellis/cluster_node.hpp"
#include "trellis/store/store_lock.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include <unistd.h>

using trellis::errc;
using trellis::detail::partition_store_path;
using trellis::detail::store_lock;

TEST_CASE("a store lock is exclusive until its holder releases it", "[unit][store][lock]") {
  trellis::test::temp_dir dir;
  auto db = dir.file("cluster.db");
  std::optional<store_lock> held;
  {
    auto first = store_lock::try_acquire(db, "test holder");
    REQUIRE(first);
    CHECK(first->path() == db + ".lock");
    held.emplace(std::move(*first));
  }
  auto second = store_lock::try_acquire(db, "test");
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == errc::store_locked);
  CHECK(second.error().message().find("pid " + std::to_string(::getpid()) + ", test holder") != std::string::npos);
  // Another store's lock is independent.
  CHECK(store_lock::try_acquire(dir.file("other.db"), "test"));
  held.reset();
  CHECK(store_lock::try_acquire(db, "test"));
}

TEST_CASE("a store lock in a directory that does not exist is a store failure", "[unit][store][lock]") {
  trellis::test::temp_dir dir;
  auto lock = store_lock::try_acquire(dir.file("missing/cluster.db"), "test");
  REQUIRE_FALSE(lock);
  CHECK(lock.error().code() == errc::store_failed);
}

TEST_CASE("each partition has its own store file beside the named one", "[unit][store][partition]") {
  CHECK(partition_store_path("cluster.db", 0, 1) == "cluster.db");
  CHECK(partition_store_path("data/cluster.db", 0, 2) == "data/cluster-p0.db");
  CHECK(partition_store_path("data/cluster.db", 1, 2) == "data/cluster-p1.db");
  CHECK(partition_store_path("store", 3, 4) == "store-p3");
}
