#pragma once

/// @file
/// The one include a Trellis user needs.

#include "trellis/canvas.hpp"        // signature, chain, group, chord
#include "trellis/cli_main.hpp"      // cli_main: the CLI for your own binary
#include "trellis/client.hpp"        // client, client_options, client_handle: submit to a cluster
#include "trellis/engine.hpp"        // engine, engine_config, workflow_handle
#include "trellis/error.hpp"         // errc, error, expected, usage_error, setup_error
#include "trellis/node_state.hpp"    // node_state
#include "trellis/retry_policy.hpp"  // retry_policy
#include "trellis/task.hpp"          // task_registry, task_ref, task_context, task_result
#include "trellis/value.hpp"         // value
#include "trellis/version.hpp"       // TRELLIS_VERSION, TRELLIS_VERSION_MAJOR/MINOR/PATCH
