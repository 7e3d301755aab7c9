// The canvas written in the workflow-file shape (`to_value`, `to_json`):
// the inverse of the parser in canvas.cpp, so that what is written reads
// back into the same canvas.

#include "trellis/canvas.hpp"

#include "trellis/detail/canvas_fields.hpp"
#include "trellis/timestamp.hpp"

#include <utility>

namespace trellis {

// -- to_value ----------------------------------------------------------------

namespace {

const char* backoff_name(backoff_kind k) noexcept { return k == backoff_kind::fixed ? "fixed" : "exponential"; }

value retry_to_value(const retry_policy& p) {
  value::map m;
  m["max_retries"] = p.max_retries;
  m["countdown_ms"] = static_cast<std::int64_t>(p.countdown.count());
  m["backoff"] = backoff_name(p.backoff);
  m["backoff_max_ms"] = static_cast<std::int64_t>(p.backoff_max.count());
  m["jitter"] = p.jitter;
  auto list = [](const std::vector<std::string>& types) {
    value::array out;
    for (const auto& t : types) {
      out.emplace_back(t);
    }
    return out;
  };
  if (!p.retry_on.empty()) {
    m["retry_on"] = list(p.retry_on);
  }
  if (!p.dont_retry_on.empty()) {
    m["dont_retry_on"] = list(p.dont_retry_on);
  }
  return m;
}

value options_to_value(const signature_options& o) {
  value::map m;
  if (o.immutable) {
    m["immutable"] = true;
  }
  if (o.retry) {
    m["retry"] = retry_to_value(*o.retry);
  }
  if (o.idempotency_key) {
    m["idempotency_key"] = *o.idempotency_key;
  }
  if (o.queue) {
    m["queue"] = *o.queue;
  }
  if (o.countdown) {
    m["countdown_ms"] = static_cast<std::int64_t>(o.countdown->count());
  }
  if (o.eta) {
    m["eta"] = format_rfc3339_ms(o.eta->time_since_epoch().count());
  }
  if (o.expires) {
    m["expires_ms"] = static_cast<std::int64_t>(o.expires->count());
  }
  if (o.time_limit) {
    m["time_limit_ms"] = static_cast<std::int64_t>(o.time_limit->count());
  }
  if (o.soft_time_limit) {
    m["soft_time_limit_ms"] = static_cast<std::int64_t>(o.soft_time_limit->count());
  }
  if (o.rate_limit) {
    m["rate_limit"] = o.rate_limit->to_string();
  }
  if (o.priority) {
    m["priority"] = *o.priority;
  }
  if (o.chunk) {
    m["chunk"] = true;
  }
  return m;
}

value::array children_to_value(const std::vector<canvas>& cs) {
  value::array out;
  out.reserve(cs.size());
  for (const auto& c : cs) {
    out.push_back(to_value(c));
  }
  return out;
}

}  // namespace

value to_value(const canvas& c) {
  value::map m;
  switch (c.type()) {
    case canvas::kind::task: {
      const auto& s = c.sig();
      m["task"] = s.task();
      m["args"] = s.args();
      m["kwargs"] = s.kwargs();
      auto opts = options_to_value(s.options());
      if (!opts.as_map().empty()) {
        m["options"] = std::move(opts);
      }
      break;
    }
    case canvas::kind::chain:
      m["chain"] = children_to_value(c.children());
      break;
    case canvas::kind::group:
      if (c.fanout() != nullptr) {
        // The map, starmap or chunks it was built from, which reads back
        // into the same group.
        m = c.fanout()->as_map();
        break;
      }
      m["group"] = children_to_value(c.children());
      break;
    case canvas::kind::chord: {
      value::map inner;
      inner["header"] = children_to_value(c.children());
      inner["body"] = to_value(c.body());
      m["chord"] = std::move(inner);
      break;
    }
  }
  detail::callbacks_to_value(c, m);  // canvas_callbacks.cpp
  return m;
}

std::string to_json(const canvas& c) { return to_json(to_value(c)); }

}  // namespace trellis
