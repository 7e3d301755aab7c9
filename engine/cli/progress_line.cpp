#include "progress_line.hpp"

#include "trellis/node_state.hpp"

#include <cstdio>
#include <iostream>
#include <utility>

#include <unistd.h>

namespace trellis::cli {

progress_counts counts_of(const value& status, std::size_t total) {
  progress_counts c;
  c.total = total;
  if (!status.is_map()) {
    return c;
  }
  auto nodes = status.as_map().find("nodes");
  if (nodes == status.as_map().end() || !nodes->second.is_array()) {
    return c;
  }
  for (const auto& n : nodes->second.as_array()) {
    if (!n.is_map()) {
      continue;
    }
    auto name = n.as_map().find("state");
    if (name == n.as_map().end() || !name->second.is_string()) {
      continue;
    }
    auto state = node_state_from_string(name->second.as_string());
    if (!state) {
      continue;
    }
    if (is_terminal(*state)) {
      ++c.done;
    }
    if (*state == node_state::failure) {
      ++c.failed;
    }
    if (*state == node_state::started) {
      ++c.running;
    }
  }
  return c;
}

std::string progress_text(const progress_counts& counts, std::chrono::milliseconds elapsed) {
  std::string text = std::to_string(counts.done);
  if (counts.total > 0) {
    text += "/" + std::to_string(counts.total);
  }
  text += " nodes done, " + std::to_string(counts.running) + " running, " + std::to_string(counts.failed) + " failed, ";
  auto tenths = elapsed.count() / 100;
  text += std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
  return text;
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

progress_line::progress_line(bool enabled, std::function<std::optional<value>()> status, std::size_t total)
    : enabled_(enabled), status_(std::move(status)), total_(total), started_(std::chrono::steady_clock::now()) {
  counts_.total = total;
}

progress_line::~progress_line() { clear(); }

void progress_line::tick() {
  if (!enabled_) {
    return;
  }
  if (auto doc = status_ ? status_() : std::nullopt) {
    counts_ = counts_of(*doc, total_);
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  // Back to the line's start, the text, then erase what a longer line left.
  std::cerr << "\rtrellis: " << progress_text(counts_, elapsed) << "\x1b[K" << std::flush;
  drawn_ = true;
}

void progress_line::clear() {
  if (drawn_) {
    std::cerr << "\r\x1b[K" << std::flush;
    drawn_ = false;
  }
}

}  // namespace trellis::cli
