#pragma once

/// @file
/// The smallest proof that a cluster works: `trellis submit --wait` of the
/// chain add(2, 2) -> add(_, 3) prints SUCCESS with the result 7. Tests that
/// attack a cluster call it before and after the attack.

#include "support/cluster_processes.hpp"
#include "support/files.hpp"
#include "support/outcome_line.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace trellis::test {

inline void check_chain_runs(cluster_processes& c) {
  nlohmann::json chain = {{"chain", {{{"task", "add"}, {"args", {2, 2}}}, {{"task", "add"}, {"args", {3}}}}}};
  auto r = c.submit(write_file(c.dir(), "chain.json", chain.dump()), {"--wait"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << c.logs());
  REQUIRE(r.status == 0);
  auto out = parse_outcome_line(r.last_line());
  CHECK(out["state"] == "SUCCESS");
  CHECK(out["result"] == 7);
}

}  // namespace trellis::test
