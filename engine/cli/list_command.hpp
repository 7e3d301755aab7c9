#pragma once

/// @file
/// Internal to the command line: `trellis list`, the recent workflows of a
/// store (docs/cli.md "Listing workflows"), as JSON lines or, with
/// `-o table`, a table for a person.

#include "table_output.hpp"

#include "trellis/cluster_node.hpp"
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

/// A table with a header (ID, STATE, CREATED, FINISHED, KEY; times in UTC),
/// one row per workflow, each line ending in '\n'.
std::string list_table(const std::vector<detail::workflow_summary>& rows);

/// The summary a list line (`detail::list_line`) was made of; nullopt for a
/// line that is not one.
std::optional<detail::workflow_summary> summary_of(const value& line);

/// `list --db PATH`: the newest `opts.limit` workflows of the store opened
/// read-only (beside a running engine or dispatcher), newest first. Throws
/// `setup_error` when the store cannot be read; returns 0.
int list_from_store(const std::string& db, const list_options& opts);

/// `list --broker URL`: the newest `opts.limit` workflows of the whole
/// namespace, asked of every partition's dispatcher and merged, newest
/// first, printed as `list_from_store` prints them. Returns 0, or the exit
/// code of the failure it printed (4 when a dispatcher cannot be asked).
int list_over_broker(const detail::cluster_options& cluster, const list_options& opts);

}  // namespace trellis::cli
