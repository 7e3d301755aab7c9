#pragma once

/// @file
/// Internal to the command line: `trellis list`, the recent workflows of a
/// store (docs/cli.md "Listing workflows"), as JSON lines or, with
/// `-o table`, a table for a person.

#include "table_output.hpp"

#include "trellis/node_state.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace trellis::cli {

/// The most workflows one `list` prints, and the default.
inline constexpr std::size_t max_list_limit = 10'000;
inline constexpr std::size_t default_list_limit = 20;

struct list_options {
  /// Only workflows in this state; all when unset.
  std::optional<node_state> state;
  std::size_t limit = default_list_limit;
  output_format format = output_format::json;
};

/// The JSON line of one workflow: {id, state, created_at, finished_at, key}
/// (times in epoch ms, `finished_at` null while unfinished, `key` null
/// without a submission key).
value list_line(const detail::workflow_summary& w);

/// A table with a header (ID, STATE, CREATED, FINISHED, KEY; times in UTC),
/// one row per workflow, each line ending in '\n'.
std::string list_table(const std::vector<detail::workflow_summary>& rows);

/// `list --db PATH`: the newest `opts.limit` workflows of the store opened
/// read-only (beside a running engine or dispatcher), newest first. Throws
/// `setup_error` when the store cannot be read; returns 0.
int list_from_store(const std::string& db, const list_options& opts);

}  // namespace trellis::cli
