#pragma once

/// @file
/// Envelopes for the codec tests and the fuzz corpus: builders that fill in the
/// fields each type needs, hand-packed field lists for what our encoder never
/// writes (missing, duplicate, unknown or mistyped fields), and a field-by-field
/// comparison. No Catch2 here: the corpus generator uses it too.

#include "trellis/detail/value_codec.hpp"
#include "trellis/envelope.hpp"
#include "trellis/value.hpp"

#include "support/values.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace trellis::test {

/// The attempt a task or outcome envelope is about.
struct attempt_address {
  std::string workflow_id;
  std::int32_t node = 0;
  std::int32_t attempt = 0;
  std::string task;
};

/// An envelope of `type` about attempt `about`; the caller adds the rest.
inline detail::envelope addressed_envelope(detail::envelope_type type, std::string id, attempt_address about) {
  detail::envelope e;
  e.type = type;
  e.id = std::move(id);
  e.workflow_id = std::move(about.workflow_id);
  e.node = about.node;
  e.attempt = about.attempt;
  e.task = std::move(about.task);
  return e;
}

/// A task envelope for attempt `to`, routed to `queue`; no arguments yet.
inline detail::envelope task_envelope(std::string id, attempt_address to, std::string queue) {
  auto e = addressed_envelope(detail::envelope_type::task, std::move(id), std::move(to));
  e.queue = std::move(queue);
  return e;
}

/// An outcome envelope of attempt `of` with `status`. It carries `result` for
/// a success and the error otherwise, never both, as the wire demands.
inline detail::envelope outcome_envelope(std::string id, attempt_address of, detail::outcome_status status,
                                         value result, std::string error_type, std::string error_message) {
  auto e = addressed_envelope(detail::envelope_type::outcome, std::move(id), std::move(of));
  e.status = status;
  if (status == detail::outcome_status::success) {
    e.payload = std::move(result);
  } else {
    e.error_type = std::move(error_type);
    e.error_message = std::move(error_message);
  }
  return e;
}

/// A progress envelope of attempt `of` reporting `latest`.
inline detail::envelope progress_envelope(std::string id, attempt_address of, task_progress latest) {
  auto e = addressed_envelope(detail::envelope_type::progress, std::move(id), std::move(of));
  e.progress = std::move(latest);
  return e;
}

/// A submit envelope of `canvas` (its value shape) as workflow `workflow_id`.
inline detail::envelope submit_envelope(std::string id, std::string workflow_id, value canvas, std::string submit_key) {
  detail::envelope e;
  e.type = detail::envelope_type::submit;
  e.id = std::move(id);
  e.workflow_id = std::move(workflow_id);
  e.payload = std::move(canvas);
  e.options = {{"submit_key", std::move(submit_key)}};
  return e;
}

/// Envelope fields in wire order, as name and value, for packing by hand.
using field_list = std::vector<std::pair<std::string, value>>;

/// `fields` packed as one msgpack map, in order, with `extra_count` more
/// entries that `extra` writes after them (for what a value cannot hold:
/// non-string keys, ext types, wide or odd encodings).
template <class Fn>
std::string pack_fields(const field_list& fields, std::uint32_t extra_count, Fn&& extra) {
  return raw_msgpack([&](raw_packer& pk) {
    pk.pack_map(static_cast<std::uint32_t>(fields.size()) + extra_count);
    for (const auto& [k, v] : fields) {
      pack_key(pk, k);
      detail::pack_value(pk, v);
    }
    extra(pk);
  });
}

/// `fields` packed as one msgpack map, in order.
inline std::string pack_fields(const field_list& fields) {
  return pack_fields(fields, 0, [](raw_packer&) {});
}

/// `fields` without the field `key`.
inline field_list without(field_list fields, const std::string& key) {
  fields.erase(std::remove_if(fields.begin(), fields.end(), [&](const auto& kv) { return kv.first == key; }),
               fields.end());
  return fields;
}

/// `fields` with `key` set to `v`: replaced where it is, or added at the end.
inline field_list with(field_list fields, const std::string& key, value v) {
  for (auto& kv : fields) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return fields;
    }
  }
  fields.emplace_back(key, std::move(v));
  return fields;
}

/// `fields` with one more `key` at the end, even when it is already there.
inline field_list plus(field_list fields, const std::string& key, value v) {
  fields.emplace_back(key, std::move(v));
  return fields;
}

/// The first field in which two envelopes differ, or "" when they are equal.
inline std::string envelope_difference(const detail::envelope& a, const detail::envelope& b) {
  if (a.v != b.v) {
    return "v";
  }
  if (a.type != b.type) {
    return "type";
  }
  if (a.id != b.id) {
    return "id";
  }
  if (a.workflow_id != b.workflow_id) {
    return "workflow_id";
  }
  if (a.node != b.node) {
    return "node";
  }
  if (a.attempt != b.attempt) {
    return "attempt";
  }
  if (a.task != b.task) {
    return "task";
  }
  if (a.queue != b.queue) {
    return "queue";
  }
  if (!same_value(value{a.args}, value{b.args})) {
    return "args";
  }
  if (!same_value(value{a.kwargs}, value{b.kwargs})) {
    return "kwargs";
  }
  if (!same_value(value{a.options}, value{b.options})) {
    return "options";
  }
  if (!same_value(a.payload, b.payload)) {
    return "payload";
  }
  if (a.status != b.status) {
    return "status";
  }
  if (a.error_type != b.error_type) {
    return "error_type";
  }
  if (a.error_message != b.error_message) {
    return "error_message";
  }
  if (a.trace != b.trace) {
    return "trace";
  }
  if (a.sent_at != b.sent_at) {
    return "sent_at";
  }
  if (a.duration_us != b.duration_us) {
    return "duration_us";
  }
  if (a.progress != b.progress) {
    return "progress";
  }
  return "";
}

}  // namespace trellis::test
