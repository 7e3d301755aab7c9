#pragma once

/// @file
/// Signatures and the canvas: `chain`, `group` and `chord`, nesting freely,
/// with Celery's semantics. A canvas is a value: it can be copied, printed and
/// serialized, and it runs only when submitted to an engine.
///
/// The constructors normalize the way Celery does, so the canvas you hold is
/// the canvas that runs:
/// - `group(group(a, b), c)` flattens to `group(a, b, c)`;
/// - `chain(chain(a, b), c)` flattens to `chain(a, b, c)`;
/// - a one-member group inside a chain unrolls: `chain(a, group(b))` is `chain(a, b)`;
/// - a group followed by anything in a chain becomes a chord:
///   `chain(group(a, b), c)` is `chord(group(a, b), c)`.
/// - an empty group inside a chain of several steps is skipped:
///   `chain(a, group())` is `a` (an empty group followed by a step is still
///   `chord([], step)`, whose body gets `[]`);
/// - a group whose only member is a chain ending in a group is that chain:
///   `group(chain(a, group(b, c)))` yields `[b, c]`, as Celery's `group.apply_async`;
/// - groups nested in a chord header flatten into the header.
/// A group that ends a chain inside a group stays nested:
/// `group(chain(a, group(b, c)), d)` yields `[[b, c], d]`. docs/canvas.md
/// has the Celery test behind each rule.

#include "trellis/defaults.hpp"
#include "trellis/error.hpp"
#include "trellis/rate_limit.hpp"
#include "trellis/retry_policy.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis {

/// An absolute time to the millisecond: a signature's `eta`.
using eta_time = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

/// Per-call options of a signature (Celery's `apply_async` options). Unset
/// options fall back to the task's registration defaults, then to the engine's.
struct signature_options {
  /// Ignore the previous result of a chain (Celery's `.si()`).
  bool immutable = false;
  /// Overrides the task's retry policy.
  std::optional<retry_policy> retry;
  /// A key that makes the step's effect happen once: a step whose key already
  /// succeeded returns the stored result without running.
  std::optional<std::string> idempotency_key;
  /// The queue the task message is routed to (default: the task's, else "default").
  std::optional<std::string> queue;
  /// Delay before the first attempt is published.
  std::optional<std::chrono::milliseconds> countdown;
  /// The time before which the first attempt is not published (one in the
  /// past: at once). Excludes `countdown`.
  std::optional<eta_time> eta;
  /// A task not started within this time of becoming ready is revoked.
  std::optional<std::chrono::milliseconds> expires;
  /// The hard time limit: an attempt still running this long after it
  /// started fails with `time_limit_exceeded` (within 200 ms), and its
  /// handler's thread is abandoned.
  std::optional<std::chrono::milliseconds> time_limit;
  /// The soft time limit: this long after it started, the attempt's
  /// `task_context` reports cancellation; a handler that stops then ends
  /// with `soft_time_limit_exceeded`.
  std::optional<std::chrono::milliseconds> soft_time_limit;
  /// At most this many starts of the task per second, minute or hour,
  /// across every worker of the namespace, spaced evenly.
  std::optional<rate_limit_spec> rate_limit;
  /// 0 (lowest) to 9 (highest); higher runs first within a queue.
  std::optional<int> priority;
  /// One task message for a chunk of calls (what `chunks` builds): the
  /// signature's only argument is a list of argument lists, and the worker
  /// calls the handler once per list, in order, in the same attempt; the
  /// result is the list of their results. A retry request or a failure of
  /// any call is the whole chunk's.
  bool chunk = false;
};

/// A task name with arguments and options: one future task invocation.
class signature {
 public:
  signature() = default;
  explicit signature(std::string task, value::array args = {}, value::map kwargs = {})
      : task_(std::move(task)), args_(std::move(args)), kwargs_(std::move(kwargs)) {}

  const std::string& task() const noexcept { return task_; }
  const value::array& args() const noexcept { return args_; }
  const value::map& kwargs() const noexcept { return kwargs_; }
  const signature_options& options() const noexcept { return options_; }
  signature_options& options() noexcept { return options_; }

  /// Fluent option setters, each returning a modified copy. Each refuses
  /// with `usage_error` what the workflow-file parser refuses: a duration
  /// outside 0 (`time_limit`, `soft_time_limit`: 1) to `max_duration_ms`, an empty queue name or
  /// one over `max_name_bytes`, an empty idempotency key or one over
  /// `max_idempotency_key_bytes`, a priority outside 0 to 9, a rate limit
  /// that is not "N/s", "N/m" or "N/h".
  signature immutable(bool yes = true) const;
  signature retry(retry_policy policy) const;
  signature idempotency_key(std::string key) const;
  signature queue(std::string name) const;
  signature countdown(std::chrono::milliseconds delay) const;
  /// Not before `when` (kept to the millisecond). `eta` and `countdown`
  /// exclude each other: setting one when the other is set is a `usage_error`.
  signature eta(std::chrono::system_clock::time_point when) const;
  signature expires(std::chrono::milliseconds after) const;
  signature time_limit(std::chrono::milliseconds limit) const;
  signature soft_time_limit(std::chrono::milliseconds limit) const;
  /// "N/s", "N/m" or "N/h" (rate_limit.hpp); anything else is a `usage_error`.
  signature rate_limit(std::string_view rate) const;
  signature priority(int level) const;
  /// Adds a keyword argument.
  signature kwarg(std::string name, value v) const;

 private:
  std::string task_;
  value::array args_;
  value::map kwargs_;
  signature_options options_;
};

/// A workflow description: a signature, a chain, a group or a chord.
class canvas {
 public:
  enum class kind : std::uint8_t { task, chain, group, chord };

  canvas(signature sig);  // NOLINT: a signature is the simplest canvas

  kind type() const noexcept { return kind_; }
  bool is_task() const noexcept { return kind_ == kind::task; }
  /// The signature of a task canvas.
  const signature& sig() const;
  /// Members of a chain or group; the header members of a chord.
  const std::vector<canvas>& children() const noexcept { return children_; }
  /// The body of a chord.
  const canvas& body() const;

  /// Number of task invocations (leaves) in the canvas.
  std::size_t task_count() const noexcept;

  /// For a group that `map`, `starmap` or `chunks` built: the workflow-file
  /// form it came from (`{"map": {...}}`), which `to_value` writes; else
  /// null. Such a group is one value to the normalization rules (a list, as
  /// Celery's xmap is one task): never flattened or unrolled.
  const value* fanout() const noexcept { return fanout_.get(); }
  /// A map, starmap or chunks over its input (no `items`): a group with no
  /// members yet, made when the input arrives (`detail::expand_over_input`).
  bool over_input() const noexcept;

  /// Callbacks (Celery's `link` and `link_error`), on any kind of canvas.
  /// Each is a canvas run as steps of the same workflow when this canvas
  /// ends: a link after a success, with the result as its first argument
  /// (unless immutable); a link_error after a failure, with the error map
  /// (`type`, `message`, `task`, `node`, `workflow`). A revoked canvas runs
  /// neither. The workflow's state and result stay its main canvas's; it
  /// is finished once every callback that runs has ended. docs/canvas.md
  /// ("Callbacks") has the rules and how they differ from Celery's.
  const std::vector<canvas>& links() const noexcept { return links_; }
  const std::vector<canvas>& link_errors() const noexcept { return link_errors_; }
  bool has_callbacks() const noexcept { return !links_.empty() || !link_errors_.empty(); }
  /// A copy with `callback` appended to the links (or link_errors). A
  /// composite with callbacks is one value to the normalization rules (it
  /// is not flattened into an outer chain or group, nor unrolled), so that
  /// its callbacks hang on exactly what was linked.
  canvas link(canvas callback) const;
  canvas link_error(canvas callback) const;

  friend canvas chain(std::vector<canvas> steps);
  friend canvas group(std::vector<canvas> members);
  friend canvas chord(std::vector<canvas> header, canvas body);
  /// Makes the group of a map, starmap or chunks (canvas_map.cpp).
  friend canvas fanout_group(std::vector<canvas> members, value spec);

 private:
  canvas(kind k, std::vector<canvas> children, std::shared_ptr<const canvas> body);
  kind kind_ = kind::task;
  std::shared_ptr<const signature> sig_;
  std::vector<canvas> children_;
  std::shared_ptr<const canvas> body_;
  std::shared_ptr<const value> fanout_;
  std::vector<canvas> links_;
  std::vector<canvas> link_errors_;
};

/// A chain: each step receives the previous step's result as its first
/// argument, unless it is immutable. Stops at the first failure. An empty
/// chain is a `usage_error`.
canvas chain(std::vector<canvas> steps);
/// A group: members run in parallel with the same input; the result is the
/// list of member results in call order. Fails if any member fails.
canvas group(std::vector<canvas> members);
/// A chord: runs `body` with the list of header results, in header order, as
/// its first argument. An empty header calls the body with `[]`. When a header
/// member fails, the body does not run and the chord fails with that error.
canvas chord(std::vector<canvas> header, canvas body);
/// `chord(group(...), body)`: a group (or any canvas, as a one-member header).
canvas chord(canvas header, canvas body);

template <class... Steps>
canvas chain(Steps&&... steps) {
  return chain(std::vector<canvas>{canvas(std::forward<Steps>(steps))...});
}
template <class... Members>
canvas group(Members&&... members) {
  return group(std::vector<canvas>{canvas(std::forward<Members>(members))...});
}

/// `[task(item, *args) for item in items]`, as Celery's `xmap` spelt as a
/// group: one task message per item, results in item order. Each member is
/// immutable (its item is its input; a previous step's result is not added).
/// Empty `items` give a group that yields `[]`.
canvas map(const std::string& task, const value::array& items, const value::array& args = {});
/// `[task(*item) for item in items]`, Celery's `xstarmap`: every item is a
/// list of positional arguments (anything else is a `usage_error`). Members
/// are immutable, as in `map`.
canvas starmap(const std::string& task, const value::array& items);
/// Celery's `chunks`: `items` (each a list of positional arguments) cut into
/// chunks of `size` (the last one may be shorter); each chunk is one task
/// message that calls `task` once per item (`signature_options::chunk`), so
/// the result is a list of lists, one per chunk, in order. `size` 0 or an
/// item that is not a list is a `usage_error`; empty `items` yield `[]`.
canvas chunks(const std::string& task, const value::array& items, std::size_t size);

/// `map`, `starmap` and `chunks` over their input: the items are the input
/// (in a chain, the previous step's result), which must be a list; the
/// group is made when the input arrives (the dispatcher stores it as a
/// replacement, docs/decisions/0030-map-over-input.md). An input that is
/// not a list fails the step with the error type `map_input_not_a_list`.
canvas map_input(const std::string& task, const value::array& args = {});
canvas starmap_input(const std::string& task);
/// `size` 0 is a `usage_error`.
canvas chunks_input(const std::string& task, std::size_t size);

/// "task", "chain", "group" or "chord".
const char* to_string(canvas::kind k) noexcept;

/// The canvas as a value, in the JSON workflow-file shape
/// (`{"task", "args", "kwargs", "options"}`, `{"chain": [...]}`,
/// `{"group": [...]}`, `{"chord": {"header": [...], "body": ...}}`).
/// Callbacks are `options.link` and `options.link_error` (each a list of
/// canvases); a composite takes `"options"` beside its body.
value to_value(const canvas& c);

/// The largest duration an option accepts (`countdown_ms`, `expires_ms`,
/// `time_limit_ms`, `soft_time_limit_ms`, `backoff_max_ms`, a retry's `countdown_ms`): ten years.
/// Larger values are refused when the canvas is read: added to a clock in
/// epoch milliseconds they would overflow (a huge countdown ran at once, a
/// huge expiry expired at once).
inline constexpr std::int64_t max_duration_ms = 10LL * 365 * 24 * 3600 * 1000;

/// Longest task or queue name, in bytes. Longer ones are refused when the
/// canvas is read, so that no error message or subject echoes megabytes.
inline constexpr std::size_t max_name_bytes = 256;

/// Longest `idempotency_key`, in bytes (room for a URL or a few hashes).
inline constexpr std::size_t max_idempotency_key_bytes = 1024;

/// Most callbacks one canvas may carry in `link` plus `link_error`; each
/// callback is a canvas and counts against `max_depth` and `max_tasks` too.
inline constexpr std::size_t max_callbacks = 64;

/// Limits that keep a workflow from a file or the wire bounded: its shape,
/// and how large what it carries may be, encoded (msgpack). Past a size
/// limit the error is `payload_too_large`, naming the limit: at submit time
/// for the workflow and each step's own arguments, when the step is
/// dispatched for an input from a previous step (a chord body's header
/// results), and on the worker for a result.
struct canvas_limits {
  std::size_t max_depth = 64;
  std::size_t max_tasks = 10'000'000;
  /// The whole submission (the submit envelope with the canvas).
  std::size_t max_submission_bytes = defaults::max_submission_bytes;
  /// One task's `args` and `kwargs`, its input from a previous step included.
  std::size_t max_argument_bytes = defaults::max_argument_bytes;
  /// One task's result.
  std::size_t max_result_bytes = defaults::max_result_bytes;
};

/// The largest task message `limits` allow: the arguments and room for the
/// rest of the envelope.
std::size_t max_task_message_bytes(const canvas_limits& limits);
/// The largest outcome message `limits` allow: a result, or a rejection
/// that carries the task message it could not read back, and room.
std::size_t max_outcome_message_bytes(const canvas_limits& limits);
/// `invalid_config` naming the first size limit that is 0 or above
/// `defaults::max_configurable_bytes`.
expected<void> check_size_limits(const canvas_limits& limits);

/// Parses the workflow-file shape strictly: unknown keys, wrong types, bad
/// option values and exceeded limits fail with `invalid_workflow` and a
/// message naming the place (`$.chain[1].options.retry.backoff: ...`).
expected<canvas> canvas_from_value(const value& v, const canvas_limits& limits = {});

/// The first step (depth first, a chord's body after its header) whose
/// `priority` option is above 0, or null: cluster mode refuses them, since
/// NATS delivers a queue's tasks in publish order.
const signature* first_prioritized_step(const canvas& c);

/// The canvas as compact JSON.
std::string to_json(const canvas& c);

}  // namespace trellis
