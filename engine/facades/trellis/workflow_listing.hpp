#pragma once

/// @file
/// Internal to the facades: a `workflow_query` as the `list` control
/// request both the engine and the cluster client send (control_messages.hpp).

#include "trellis/control_messages.hpp"
#include "trellis/engine.hpp"
#include "trellis/error.hpp"

namespace trellis::detail {

/// The request for one page; `invalid_config` for a limit outside 1 to
/// `max_list_page` or a cursor longer than `max_cursor_bytes`.
expected<control_request> list_request(const workflow_query& query);

}  // namespace trellis::detail
