// Callbacks on a canvas (Celery's `link` and `link_error`): the builders,
// and how they are written to and read from the workflow file, where they
// are `options.link` and `options.link_error` of a signature or of a
// composite (`{"chain": [...], "options": {"link_error": ...}}`). How they
// run is the graph's (workflow_graph.cpp).

#include "trellis/canvas.hpp"

#include "trellis/detail/canvas_fields.hpp"

#include <string>
#include <utility>

namespace trellis {

namespace {

void check_room(const canvas& c) {
  if (c.links().size() + c.link_errors().size() >= max_callbacks) {
    throw usage_error("canvas: at most " + std::to_string(max_callbacks) + " callbacks (link and link_error) per canvas");
  }
}

}  // namespace

canvas canvas::link(canvas callback) const {
  check_room(*this);
  canvas copy = *this;
  copy.links_.push_back(std::move(callback));
  return copy;
}

canvas canvas::link_error(canvas callback) const {
  check_room(*this);
  canvas copy = *this;
  copy.link_errors_.push_back(std::move(callback));
  return copy;
}

namespace detail {

void callbacks_to_value(const canvas& c, value::map& m) {
  if (!c.has_callbacks()) {
    return;
  }
  auto& options = m["options"];
  if (!options.is_map()) {
    options = value::map{};
  }
  auto& out = options.as_map();
  for (auto [key, list] : {std::pair{"link", &c.links()}, std::pair{"link_error", &c.link_errors()}}) {
    if (list->empty()) {
      continue;
    }
    value::array xs;
    xs.reserve(list->size());
    for (const auto& cb : *list) {
      xs.push_back(to_value(cb));
    }
    out[key] = std::move(xs);
  }
}

expected<signature_options> options_at_without_callbacks(const value& v, const std::string& path) {
  if (!v.is_map() || (v.as_map().count("link") == 0 && v.as_map().count("link_error") == 0)) {
    return options_at(v, path);
  }
  auto rest = v.as_map();
  rest.erase("link");
  rest.erase("link_error");
  return options_at(value(std::move(rest)), path);
}

expected<canvas> attach_callbacks(canvas c, const value& options, const std::string& path, bool composite,
                                  const std::function<expected<canvas>(const value&, const std::string&)>& parse) {
  auto m = map_at(options, path);
  if (!m) {
    return m.error();
  }
  if (composite) {
    // Celery's other per-call options belong to the signatures that run.
    if (auto ok = reject_unknown_keys(**m, path, {"link", "link_error"}); !ok) {
      return error{errc::invalid_workflow, ok.error().message() + " (a composite's options hold only link and link_error)"};
    }
  }
  std::size_t count = 0;
  for (const char* key : {"link", "link_error"}) {
    auto it = (*m)->find(key);
    if (it == (*m)->end()) {
      continue;
    }
    auto at = path + "." + key;
    // One canvas, or a list of them.
    std::vector<std::pair<const value*, std::string>> items;
    if (it->second.is_array()) {
      const auto& xs = it->second.as_array();
      if (xs.size() > max_callbacks) {
        return invalid(at, "at most " + std::to_string(max_callbacks) + " callbacks, got " + std::to_string(xs.size()));
      }
      for (std::size_t i = 0; i < xs.size(); ++i) {
        items.emplace_back(&xs[i], at + "[" + std::to_string(i) + "]");
      }
    } else if (it->second.is_map()) {
      items.emplace_back(&it->second, at);
    } else {
      return invalid(at, "must be a canvas or a list of canvases, got " + describe(it->second));
    }
    for (const auto& [item, item_path] : items) {
      if (++count > max_callbacks) {
        return invalid(path, "at most " + std::to_string(max_callbacks) + " callbacks (link and link_error together)");
      }
      auto cb = parse(*item, item_path);
      if (!cb) {
        return cb.error();
      }
      c = std::string_view{key} == "link" ? c.link(std::move(*cb)) : c.link_error(std::move(*cb));
    }
  }
  return c;
}

}  // namespace detail

}  // namespace trellis
