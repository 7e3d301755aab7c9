#pragma once

/// @file
/// What `status` and `dlq list` report, read from a store as values. The CLI
/// prints them from a store file (`--db`); a cluster dispatcher sends them
/// over the broker (`--broker`), so both forms print the same thing.

#include "trellis/error.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/value.hpp"

#include <optional>
#include <string>

namespace trellis::detail {

/// The status document of workflow `id`: {id, state, result, error, nodes,
/// failed_attempts} (docs/cli.md "Status line"); nullopt when the store does
/// not hold it. A node row carries the latest `progress` and `custom_state`
/// its attempt reported; a running attempt that reported is listed even
/// before it has a node row (STARTED). Errors are the store's.
expected<std::optional<value::map>> status_document(sqlite_store& store, const std::string& id);

/// Every dead letter, newest first, replayed ones included, each as the map
/// `dlq list` prints (docs/cli.md "Dead-letter line"). Errors are the store's.
expected<value::array> dead_letter_rows(sqlite_store& store);

}  // namespace trellis::detail
