#pragma once

/// @file
/// The dashboard's files (engine/services/trellis/http/dashboard/), built
/// into the binary by cmake/embed_assets.cmake: a process serves them with
/// no file and no network access at run time (docs/dashboard.md).

#include <string_view>

namespace trellis::detail {

struct dashboard_asset {
  /// "/index.html", "/app.js", "/app.css".
  std::string_view path;
  std::string_view body;
  const char* content_type;
};

/// The asset at `path`; nullptr when there is none.
const dashboard_asset* find_dashboard_asset(std::string_view path);

}  // namespace trellis::detail
