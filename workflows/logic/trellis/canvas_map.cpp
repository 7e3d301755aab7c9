// map, starmap and chunks: Celery's xmap, xstarmap and chunks, expanded when
// the canvas is built into the group of task messages they stand for
// (docs/decisions/0028-map-and-chunks.md). Kept out of canvas.cpp, which
// holds the core canvas and its parser.

#include "trellis/canvas.hpp"
#include "trellis/detail/canvas_fields.hpp"
#include "trellis/detail/value_codec.hpp"

#include <algorithm>
#include <cstddef>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trellis {

namespace {

enum class fanout_kind : std::uint8_t { map, starmap, chunks };

/// What one `map`, `starmap` or `chunks` asks for, from the API or a file.
struct fanout_spec {
  fanout_kind kind = fanout_kind::map;
  std::string task;
  value::array items;
  /// map only: the arguments after the item.
  value::array args;
  value::map kwargs;
  signature_options options;
  /// chunks only: items per task message.
  std::size_t size = 1;
};

std::size_t message_count(const fanout_spec& spec) {
  if (spec.kind != fanout_kind::chunks) {
    return spec.items.size();
  }
  return spec.items.size() / spec.size + (spec.items.size() % spec.size != 0 ? 1 : 0);
}

/// The problem with `spec`, worded without a place (the caller adds the
/// path or the builder's name), or nothing. `items_path` names the items in
/// the words of the caller ("items" or "$.map.items").
std::optional<std::string> problem_of(const fanout_spec& spec, const std::string& items_path) {
  if (spec.kind == fanout_kind::chunks && spec.size == 0) {
    return std::string{"size must be at least 1"};
  }
  if (spec.kind != fanout_kind::map) {
    // Each item is spread into the call's positional arguments, so it must be a list.
    for (std::size_t i = 0; i < spec.items.size(); ++i) {
      if (!spec.items[i].is_array()) {
        return items_path + "[" + std::to_string(i) + "] must be an array of arguments, got " +
               detail::describe(spec.items[i]);
      }
    }
  }
  if (spec.options.chunk) {
    return std::string{"option 'chunk' is set by chunks itself and cannot be given"};
  }
  return std::nullopt;
}

signature member(const fanout_spec& spec, value::array args, bool chunk) {
  signature s(spec.task, std::move(args), spec.kwargs);
  s.options() = spec.options;
  // The item is the member's input: a previous step's result is not
  // prepended (with items, a map ignores its input).
  s.options().immutable = true;
  s.options().chunk = chunk;
  return s;
}

/// The workflow-file form of what a builder was given (builders take no
/// kwargs or options, so there are none to write).
value form_of(const fanout_spec& spec) {
  value::map inner;
  inner["task"] = spec.task;
  inner["items"] = spec.items;
  const char* key = "map";
  switch (spec.kind) {
    case fanout_kind::map:
      inner["args"] = spec.args;
      break;
    case fanout_kind::starmap:
      key = "starmap";
      break;
    case fanout_kind::chunks:
      key = "chunks";
      inner["size"] = static_cast<std::int64_t>(spec.size);
      break;
  }
  value::map outer;
  outer[key] = value(std::move(inner));
  return outer;
}

/// The group `spec` stands for, written back as `form`; `spec` has passed
/// `problem_of`.
canvas expand(const fanout_spec& spec, value form) {
  std::vector<canvas> members;
  members.reserve(message_count(spec));
  switch (spec.kind) {
    case fanout_kind::map:
      for (const auto& item : spec.items) {
        value::array args;
        args.reserve(spec.args.size() + 1);
        args.push_back(item);
        args.insert(args.end(), spec.args.begin(), spec.args.end());
        members.emplace_back(member(spec, std::move(args), false));
      }
      break;
    case fanout_kind::starmap:
      for (const auto& item : spec.items) {
        members.emplace_back(member(spec, item.as_array(), false));
      }
      break;
    case fanout_kind::chunks:
      for (std::size_t first = 0; first < spec.items.size(); first += spec.size) {
        auto last = first + std::min(spec.size, spec.items.size() - first);
        value::array chunk(spec.items.begin() + static_cast<std::ptrdiff_t>(first),
                           spec.items.begin() + static_cast<std::ptrdiff_t>(last));
        members.emplace_back(member(spec, value::array{value(std::move(chunk))}, true));
      }
      break;
  }
  return fanout_group(std::move(members), std::move(form));
}

canvas build(fanout_spec spec, const char* name) {
  if (auto problem = problem_of(spec, "items")) {
    throw usage_error(std::string{name} + " '" + spec.task.substr(0, 60) + "': " + *problem);
  }
  auto form = form_of(spec);
  return expand(spec, std::move(form));
}

/// A map, starmap or chunks over its input: a sealed group without members,
/// written back without `items`.
canvas deferred(fanout_spec spec, const char* name) {
  if (auto problem = problem_of(spec, "items")) {
    throw usage_error(std::string{name} + " '" + spec.task.substr(0, 60) + "': " + *problem);
  }
  auto form = form_of(spec);
  form.as_map().begin()->second.as_map().erase("items");
  return fanout_group({}, std::move(form));
}

/// Reads back what `form_of` (or the parser) wrote: the spec of a map,
/// starmap or chunks. The form was checked when it was parsed or built.
fanout_spec spec_of(const value& form) {
  const auto& [key, inner_value] = *form.as_map().begin();
  const auto& inner = inner_value.as_map();
  fanout_spec spec;
  spec.kind = key == "map" ? fanout_kind::map : key == "starmap" ? fanout_kind::starmap : fanout_kind::chunks;
  spec.task = inner.at("task").as_string();
  if (auto it = inner.find("args"); it != inner.end()) {
    spec.args = it->second.as_array();
  }
  if (auto it = inner.find("kwargs"); it != inner.end()) {
    spec.kwargs = it->second.as_map();
  }
  if (auto it = inner.find("size"); it != inner.end()) {
    spec.size = static_cast<std::size_t>(it->second.as_int());
  }
  return spec;
}

}  // namespace

canvas map(const std::string& task, const value::array& items, const value::array& args) {
  fanout_spec spec;
  spec.kind = fanout_kind::map;
  spec.task = task;
  spec.items = items;
  spec.args = args;
  return build(std::move(spec), "map");
}

canvas starmap(const std::string& task, const value::array& items) {
  fanout_spec spec;
  spec.kind = fanout_kind::starmap;
  spec.task = task;
  spec.items = items;
  return build(std::move(spec), "starmap");
}

canvas chunks(const std::string& task, const value::array& items, std::size_t size) {
  fanout_spec spec;
  spec.kind = fanout_kind::chunks;
  spec.task = task;
  spec.items = items;
  spec.size = size;
  return build(std::move(spec), "chunks");
}

canvas map_input(const std::string& task, const value::array& args) {
  fanout_spec spec;
  spec.kind = fanout_kind::map;
  spec.task = task;
  spec.args = args;
  return deferred(std::move(spec), "map");
}

canvas starmap_input(const std::string& task) {
  fanout_spec spec;
  spec.kind = fanout_kind::starmap;
  spec.task = task;
  return deferred(std::move(spec), "starmap");
}

canvas chunks_input(const std::string& task, std::size_t size) {
  fanout_spec spec;
  spec.kind = fanout_kind::chunks;
  spec.task = task;
  spec.size = size;
  return deferred(std::move(spec), "chunks");
}

namespace detail {

expected<canvas> expand_over_input(const canvas& c, const value& input) {
  auto spec = spec_of(*c.fanout());
  if (!input.is_array()) {
    return error{errc::invalid_workflow,
                 "map_input_not_a_list: the input of " + spec.task + "'s map must be a list, got " + describe(input)};
  }
  spec.items = input.as_array();
  // Options (queue, retry, ...) are the form's, so the members get them too.
  const auto& inner = c.fanout()->as_map().begin()->second.as_map();
  if (auto it = inner.find("options"); it != inner.end()) {
    auto options = options_at(it->second, "options");
    if (!options) {
      return options.error();
    }
    spec.options = std::move(*options);
  }
  if (auto problem = problem_of(spec, "input")) {
    return error{errc::invalid_workflow, "map_input_not_a_list: " + *problem};
  }
  auto form = form_of(spec);
  // The form keeps the map's own kwargs and options; form_of writes neither.
  auto& written = form.as_map().begin()->second.as_map();
  for (const char* key : {"kwargs", "options"}) {
    if (auto it = inner.find(key); it != inner.end()) {
      written[key] = it->second;
    }
  }
  return expand(spec, std::move(form));
}

expected<canvas> parse_fanout(std::string_view key, const value& v, const std::string& path,
                              const canvas_limits& limits, std::size_t& tasks) {
  auto m = map_at(v, path);
  if (!m) {
    return m.error();
  }
  fanout_spec spec;
  spec.kind = key == "map" ? fanout_kind::map : key == "starmap" ? fanout_kind::starmap : fanout_kind::chunks;
  auto ok = spec.kind == fanout_kind::map
                ? reject_unknown_keys(**m, path, {"task", "items", "args", "kwargs", "options"})
            : spec.kind == fanout_kind::starmap
                ? reject_unknown_keys(**m, path, {"task", "items", "kwargs", "options"})
                : reject_unknown_keys(**m, path, {"task", "items", "size", "kwargs", "options"});
  if (!ok) {
    return ok.error();
  }
  auto task_it = (*m)->find("task");
  if (task_it == (*m)->end()) {
    return invalid(path, "missing key 'task'");
  }
  auto name = name_at(task_it->second, path + ".task");
  if (!name) {
    return name.error();
  }
  spec.task = std::move(*name);
  auto items_it = (*m)->find("items");
  if (items_it != (*m)->end()) {
    auto items = array_at(items_it->second, path + ".items");
    if (!items) {
      return items.error();
    }
    spec.items = **items;
  }
  if (auto it = (*m)->find("args"); it != (*m)->end()) {
    auto args = array_at(it->second, path + ".args");
    if (!args) {
      return args.error();
    }
    spec.args = **args;
  }
  if (auto it = (*m)->find("kwargs"); it != (*m)->end()) {
    auto kwargs = map_at(it->second, path + ".kwargs");
    if (!kwargs) {
      return kwargs.error();
    }
    spec.kwargs = **kwargs;
  }
  if (auto it = (*m)->find("options"); it != (*m)->end()) {
    auto options = options_at(it->second, path + ".options");
    if (!options) {
      return options.error();
    }
    spec.options = std::move(*options);
  }
  if (spec.kind == fanout_kind::chunks) {
    auto size_it = (*m)->find("size");
    if (size_it == (*m)->end()) {
      return invalid(path, "missing key 'size'");
    }
    auto size = int_at(size_it->second, path + ".size", 1, std::numeric_limits<std::int32_t>::max(),
                       "an integer from 1 to 2147483647");
    if (!size) {
      return size.error();
    }
    spec.size = static_cast<std::size_t>(*size);
  }
  if (auto problem = problem_of(spec, path + ".items")) {
    return error{errc::invalid_workflow, path + ": " + *problem};
  }
  value::map form;
  form[std::string{key}] = v;
  if (items_it == (*m)->end()) {
    // Over its input: the members are made when the input arrives; it
    // counts as one task until then.
    if (++tasks > limits.max_tasks) {
      return invalid(path, "the workflow has more than max_tasks (" + std::to_string(limits.max_tasks) + ") tasks");
    }
    return fanout_group({}, std::move(form));
  }
  // Counted before anything is built: a million items are refused without
  // making a million signatures first.
  auto count = message_count(spec);
  if (count > limits.max_tasks || tasks > limits.max_tasks - count) {
    return invalid(path, "the workflow has more than max_tasks (" + std::to_string(limits.max_tasks) + ") tasks");
  }
  tasks += count;
  auto flow = expand(spec, std::move(form));
  // Each member's arguments are known here, so they are refused here, as a
  // task's own arguments are.
  for (const auto& c : flow.children()) {
    const auto& s = c.sig();
    if (auto bytes = packed_size(s.args()) + packed_size(s.kwargs()); bytes > limits.max_argument_bytes) {
      return error{errc::payload_too_large,
                   path + ": the arguments of one '" + spec.task + "' are " + std::to_string(bytes) +
                       " bytes encoded, beyond max_argument_bytes (" + std::to_string(limits.max_argument_bytes) +
                       "); pass a reference to large data (a key, a path, a URL) or raise the limit"};
    }
  }
  return flow;
}

}  // namespace detail

}  // namespace trellis
