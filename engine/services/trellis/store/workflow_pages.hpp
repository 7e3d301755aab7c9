#pragma once

/// @file
/// Pages of a store's workflows, newest first: what `trellis list` prints
/// and what `GET /api/workflows` answers (docs/cli.md "Listing workflows",
/// docs/operations.md "HTTP"). A page ends with a cursor, an opaque string
/// that the next request passes back to continue after the last workflow.

#include "trellis/error.hpp"
#include "trellis/node_state.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/value.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// The JSON line of one workflow: {id, state, created_at, finished_at, key}
/// (times in epoch ms, `finished_at` null while unfinished, `key` null
/// without a submission key).
value list_line(const workflow_summary& w);

/// The cursor that continues after `w`: `<created_at>.<id>`.
std::string cursor_after(const workflow_summary& w);

/// Reads a cursor; `malformed_envelope` for one not made by `cursor_after`.
expected<workflow_cursor> parse_cursor(std::string_view text);

/// One page: {workflows: [list lines], next: cursor of the last line, or
/// nil when there is nothing after it}. Errors: the store's, a bad cursor.
expected<value::map> workflow_page(sqlite_store& store, std::optional<node_state> state, std::size_t limit,
                              const std::string& cursor);

/// Merges the pages of several partitions (each newest first) into one of
/// at most `limit` lines, newest first. `next` continues every partition
/// after the last line kept: a line older than it comes in a later page.
value merge_pages(const std::vector<value>& pages, std::size_t limit);

}  // namespace trellis::detail
