#pragma once

/// @file
/// Running a workflow to its result on an embedded engine, for the tests
/// that use the engine's own API.

#include "support/wait_until.hpp"

#include <trellis/engine.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace trellis::test {

/// An engine on `store_path` with a fixed retry-jitter seed, as the engine
/// tests run it.
inline engine_config engine_config_for(const std::string& store_path) {
  engine_config cfg;
  cfg.store_path = store_path;
  cfg.jitter_seed = 7;
  return cfg;
}

/// Submits `flow` on `eng` and waits (up to `max_test_wait`) for its result,
/// which must be a value; a refused submission or a failed workflow fails
/// the test, saying why.
inline value run(engine& eng, const canvas& flow) {
  auto h = eng.submit(flow);
  INFO((h ? std::string{} : to_string(h.error())));
  REQUIRE(h);
  auto r = h->wait_for(max_test_wait);
  INFO((r ? std::string{} : to_string(r.error())));
  REQUIRE(r);
  return *r;
}

}  // namespace trellis::test
