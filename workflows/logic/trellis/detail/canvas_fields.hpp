#pragma once

/// @file
/// The field readers of the workflow-file parser (canvas.cpp), shared with
/// the parser of `map`, `starmap` and `chunks` (canvas_map.cpp) so that both
/// report errors the same way: `invalid_workflow` and a message naming the
/// place (`$.chain[1].map.items: must be an array, got 3`). Private: no
/// public header includes it.

#include "trellis/canvas.hpp"
#include "trellis/error.hpp"
#include "trellis/value.hpp"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

/// `invalid_workflow` with "PATH: PROBLEM".
error invalid(const std::string& path, const std::string& problem);
/// A short rendering of an offending value: scalars as JSON (cut), containers by kind.
std::string describe(const value& v);
expected<const value::array*> array_at(const value& v, const std::string& path);
expected<const value::map*> map_at(const value& v, const std::string& path);
/// A task or queue name: non-empty, at most `max_name_bytes`.
expected<std::string> name_at(const value& v, const std::string& path);
/// An integer from `lo` to `hi`; `expectation` words the range in the error.
expected<std::int64_t> int_at(const value& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                              const char* expectation);
/// Fails naming the first key of `m` that is not in `known`.
expected<void> reject_unknown_keys(const value::map& m, const std::string& path,
                                   std::initializer_list<std::string_view> known);
/// A signature's `options` map.
expected<signature_options> options_at(const value& v, const std::string& path);
/// The same, ignoring its callbacks (`link`, `link_error`), which
/// `attach_callbacks` reads.
expected<signature_options> options_at_without_callbacks(const value& v, const std::string& path);
/// `c` with the callbacks of `options` (the `options` value at `path`),
/// each read with `parse`. For a composite (`composite`), `options` may
/// hold nothing else. At most `max_callbacks` in all.
expected<canvas> attach_callbacks(canvas c, const value& options, const std::string& path, bool composite,
                                  const std::function<expected<canvas>(const value&, const std::string&)>& parse);
/// Writes the callbacks of `c` into its workflow-file form `m` (`options`).
void callbacks_to_value(const canvas& c, value::map& m);

}  // namespace trellis::detail

namespace trellis {

/// The group of a map, starmap or chunks: `members` as built, `spec` the
/// workflow-file form to write back (canvas.cpp, a friend of `canvas`).
canvas fanout_group(std::vector<canvas> members, value spec);

}  // namespace trellis

namespace trellis::detail {

/// Parses the inner object of `{"map": ...}`, `{"starmap": ...}` or
/// `{"chunks": ...}` (`key`) at `path` into the group it stands for,
/// counting its task messages into `tasks` against `limits.max_tasks`.
expected<canvas> parse_fanout(std::string_view key, const value& spec, const std::string& path,
                              const canvas_limits& limits, std::size_t& tasks);

/// The group a map, starmap or chunks over its input (`c.over_input()`)
/// stands for once `input` arrived: `input` must be a list (else the error
/// `map_input_not_a_list`), and for starmap and chunks a list of lists.
expected<canvas> expand_over_input(const canvas& c, const value& input);

}  // namespace trellis::detail
