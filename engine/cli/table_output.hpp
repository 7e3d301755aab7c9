#pragma once

/// @file
/// Internal to the command line: `-o table`, the human form of the commands
/// whose JSON lines a person reads too (`list`, `status`, `dlq list`;
/// docs/cli.md "Tables"). JSON stays the default and the contract; a
/// table is for reading only and may change between releases.

#include "trellis/value.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace trellis::cli {

/// What `-o` chose: JSON lines (the default, for programs) or a table.
enum class output_format { json, table };

/// Columns padded to their widest cell, two spaces apart, a header first;
/// each line ends in '\n'.
std::string format_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

/// "2026-12-06 21:30:01" (UTC) for epoch milliseconds; "-" for 0 (none).
std::string utc_time(std::int64_t epoch_ms);

/// A value as a cell: a string as it is, null as "-", anything else as JSON.
std::string cell(const value& v);

/// `status -o table`: the workflow's id, state, result or error, then a
/// table of its nodes (NODE, TASK, STATE, ATTEMPT, PROGRESS, ERROR).
std::string status_table(const value::map& doc);

/// `dlq list -o table`: ID, WORKFLOW, NODE, TASK, REASON, ATTEMPTS,
/// CREATED (UTC), REPLAYED of the dead-letter rows.
std::string dead_letter_table(const value::array& rows);

}  // namespace trellis::cli
