#pragma once

/// @file
/// Tasks: typed handlers registered by name, the context a handler runs in,
/// and what a handler returns.
///
/// @code
/// trellis::task_registry tasks;
/// auto add = tasks.add("math.add", {"x", "y"}, [](trellis::task_context&, std::int64_t x, std::int64_t y) {
///   return x + y;
/// });
/// auto sig = add.with(2, 2);               // a signature, ready for chain/group/chord
/// auto kw = signature("math.add", {1}).kwarg("y", 2);  // binds x = 1, y = 2
/// @endcode

#include "trellis/canvas.hpp"
#include "trellis/rate_limit.hpp"
#include "trellis/retry_policy.hpp"
#include "trellis/stop_token.hpp"
#include "trellis/task_progress.hpp"
#include "trellis/value.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace trellis {

/// A handler's request to run again later: a counted attempt whose delay the
/// retry policy picks (or `countdown`, when given).
struct retry_request {
  std::string reason;
  std::optional<std::chrono::milliseconds> countdown;
};

/// A handler's request to be replaced by a canvas (Celery's `replace`):
/// the step's result becomes the canvas's result. The canvas runs with no
/// input, in the same workflow, after the dispatcher has stored it with the
/// outcome (docs/canvas.md, "Replacing a task").
struct replace_request {
  canvas with;
};

/// What a handler returns: a result, a retry request or a replacement.
template <class T>
class task_result {
 public:
  task_result(T result) : data_(std::move(result)) {}                  // NOLINT
  task_result(retry_request retry) : data_(std::move(retry)) {}        // NOLINT
  task_result(replace_request replace) : data_(std::move(replace)) {}  // NOLINT
  /// `return task_result<T>::replace(group(...));`
  static task_result replace(canvas c) { return task_result(replace_request{std::move(c)}); }
  bool is_retry() const noexcept { return data_.index() == 1; }
  bool is_replace() const noexcept { return data_.index() == 2; }
  const T& result() const { return std::get<0>(data_); }
  T& result() { return std::get<0>(data_); }
  const retry_request& retry() const { return std::get<1>(data_); }
  const replace_request& replacement() const { return std::get<2>(data_); }

 private:
  std::variant<T, retry_request, replace_request> data_;
};

/// Thrown by a handler (or by argument conversion) for input that can never
/// succeed: the node fails at once, without retries, and its message goes to
/// the dead-letter store with reason `bad_arguments`.
class task_rejected : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by a handler for a failure with a type of its own:
/// `throw trellis::task_error("connection_error", "db down")`. The type is
/// the outcome's `error_type` (instead of the exception's C++ type name),
/// which a retry policy's `retry_on` and `dont_retry_on` select by, and which
/// the failed node's error keeps. An empty type is reported as `task_error`.
class task_error : public std::runtime_error {
 public:
  task_error(std::string type, const std::string& message) : std::runtime_error(message), type_(std::move(type)) {}
  const std::string& type() const noexcept { return type_; }

 private:
  std::string type_;
};

/// Thrown when a handler stops because its soft time limit passed:
/// `ctx.throw_if_cancelled()` and `ctx.sleep_for()` throw it, and a handler
/// may throw it itself. A `task_error` of type `soft_time_limit_exceeded`,
/// so it follows the retry policy and its filters like any typed failure.
/// Catch it to clean up; a handler that then returns a value succeeds.
class soft_time_limit_exceeded : public task_error {
 public:
  explicit soft_time_limit_exceeded(const std::string& message = "the attempt stopped at its soft time limit")
      : task_error("soft_time_limit_exceeded", message) {}
};

/// One named parameter of a typed handler, optionally with a default for
/// when a call gives it neither by position nor by keyword. Converts from a
/// name, so `{"x", "y"}` names two parameters and
/// `{"x", trellis::param("y", 10)}` gives the second a default.
struct param {
  param(const char* parameter) : name(parameter) {}             // NOLINT
  param(std::string parameter) : name(std::move(parameter)) {}  // NOLINT
  param(std::string parameter, value fallback) : name(std::move(parameter)), default_value(std::move(fallback)) {}

  std::string name;
  std::optional<value> default_value;
};

/// What a running handler knows about its invocation. Valid only during the call.
class task_context {
 public:
  task_context(std::string task, std::string workflow_id, std::int32_t node, std::int32_t attempt,
               std::string idempotency_key, value::map kwargs, trellis::stop_token stop = {},
               std::shared_ptr<progress_sink> progress = nullptr)
      : task_(std::move(task)),
        workflow_id_(std::move(workflow_id)),
        node_(node),
        attempt_(attempt),
        idempotency_key_(std::move(idempotency_key)),
        kwargs_(std::move(kwargs)),
        stop_(std::move(stop)),
        sink_(std::move(progress)) {}

  const std::string& task() const noexcept { return task_; }
  const std::string& workflow_id() const noexcept { return workflow_id_; }
  std::int32_t node() const noexcept { return node_; }
  /// 1 for the first attempt, 2 for the first retry, and so on.
  std::int32_t attempt() const noexcept { return attempt_; }
  /// The same on every attempt and every redelivery of this step: the
  /// signature's `idempotency_key`, else "<workflow id>/<node>". Pass it to
  /// external systems so that a repeated call has its effect once.
  const std::string& idempotency_key() const noexcept { return idempotency_key_; }
  /// The call's keyword arguments as they came. A typed handler registered
  /// with parameter names has them bound to its parameters already; a raw
  /// handler reads them here.
  const value::map& kwargs() const noexcept { return kwargs_; }

  /// True once the attempt should stop: its soft time limit passed, or the
  /// worker gave it up at its hard time limit. A handler that looks at it
  /// ends early, by `throw_if_cancelled()` or by returning what it has.
  bool cancelled() const { return stop_.stop_requested(); }
  /// When the attempt is asked to stop: started + `soft_time_limit_ms`.
  /// Empty without a soft limit (a hard limit still stops the token).
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return stop_.deadline(); }
  /// The attempt's stop, to pass to what the handler calls (a wait, a
  /// loop of its own, another thread).
  const trellis::stop_token& stop_token() const noexcept { return stop_; }
  /// Throws `soft_time_limit_exceeded` once `cancelled()`.
  void throw_if_cancelled() const {
    if (cancelled()) {
      throw soft_time_limit_exceeded{};
    }
  }
  /// Sleeps for `d`, waking at once when the attempt is asked to stop, and
  /// then throws `soft_time_limit_exceeded`.
  void sleep_for(std::chrono::steady_clock::duration d) const {
    if (!stop_.wait_for(d)) {
      throw soft_time_limit_exceeded{};
    }
  }

  /// Reports how far the attempt is: `done` units of `total` (when known),
  /// with a short message, cut to `defaults::max_progress_message_bytes`
  /// bytes. Replaces the previous report; keeps the custom state. Cheap: the
  /// worker sends the latest report at most every
  /// `defaults::progress_report_interval`, and `trellis status` shows it on
  /// the node while it runs and after. Throws `usage_error` (failing the
  /// attempt) for a negative `done` or `total`.
  void report_progress(std::int64_t done, std::optional<std::int64_t> total = std::nullopt,
                       std::string message = {});
  /// Sets a custom state name of the handler's own ("UPLOADING"), shown by
  /// `trellis status` beside the node's state. 1 to
  /// `defaults::max_custom_state_chars` characters of [A-Z0-9_], not a
  /// built-in state name: anything else throws `usage_error`, which fails
  /// the attempt (a programmer error, see `custom_state_problem`).
  void set_state(const std::string& name);
  /// Drops the custom state.
  void clear_state();
  /// The latest report of this attempt.
  const task_progress& progress() const noexcept { return progress_; }

  /// Returns a replacement: `return ctx.replace(trellis::group(...));`, in
  /// a handler that returns `task_result<...>`. The step ends as `c` ends.
  replace_request replace(canvas c) const { return replace_request{std::move(c)}; }

  /// Returns a retry request: `return ctx.retry_later("gateway busy");`.
  retry_request retry_later(std::string reason,
                            std::optional<std::chrono::milliseconds> countdown = std::nullopt) const {
    return retry_request{std::move(reason), countdown};
  }

 private:
  std::string task_;
  std::string workflow_id_;
  std::int32_t node_;
  std::int32_t attempt_;
  std::string idempotency_key_;
  value::map kwargs_;
  trellis::stop_token stop_;
  std::shared_ptr<progress_sink> sink_;
  task_progress progress_;
};

/// The type-erased form every handler is stored as.
using raw_handler = std::function<task_result<value>(task_context&, const value::array& args)>;

/// Registration defaults of a task; a signature's options override them.
struct task_defaults {
  std::string queue = "default";
  retry_policy retry = retry_policy::none();
  std::optional<std::chrono::milliseconds> time_limit;
  std::optional<std::chrono::milliseconds> soft_time_limit;
  std::optional<rate_limit_spec> rate_limit;
};

/// A registered task.
struct registered_task {
  std::string name;
  raw_handler handler;
  task_defaults defaults;
  /// The handler's parameter names, in order, when it was registered with
  /// them; empty for an unnamed or raw handler.
  std::vector<std::string> params;
};

class task_registry;

/// A handle on a registered task: set its defaults, build signatures.
class task_ref {
 public:
  task_ref(task_registry& registry, std::string name) : registry_(&registry), name_(std::move(name)) {}

  const std::string& name() const noexcept { return name_; }
  /// Default queue of the task's messages.
  task_ref& queue(std::string name);
  /// Default retry policy.
  task_ref& retry(retry_policy policy);
  /// Default (hard) time limit of one attempt.
  task_ref& time_limit(std::chrono::milliseconds limit);
  /// Default soft time limit of one attempt: when the handler is asked to stop.
  task_ref& soft_time_limit(std::chrono::milliseconds limit);
  /// Default rate limit: "N/s", "N/m" or "N/h" (rate_limit.hpp), at most N
  /// starts of this task per unit across every worker of the namespace;
  /// anything else is a `usage_error`.
  task_ref& rate_limit(std::string_view rate);

  /// A signature of this task with these positional arguments.
  template <class... Args>
  signature with(Args&&... args) const {
    return signature(name_, value::array{value(std::forward<Args>(args))...});
  }

 private:
  registered_task& entry();
  task_registry* registry_;
  std::string name_;
};

namespace detail {

template <class T>
struct handler_traits : handler_traits<decltype(&T::operator())> {};
template <class R, class... A>
struct handler_traits<R (*)(task_context&, A...)> {
  using result_type = R;
  using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct handler_traits<R(task_context&, A...)> : handler_traits<R (*)(task_context&, A...)> {};
template <class C, class R, class... A>
struct handler_traits<R (C::*)(task_context&, A...) const> : handler_traits<R (*)(task_context&, A...)> {};
template <class C, class R, class... A>
struct handler_traits<R (C::*)(task_context&, A...)> : handler_traits<R (*)(task_context&, A...)> {};

template <class T>
struct is_task_result : std::false_type {};
template <class T>
struct is_task_result<task_result<T>> : std::true_type {};

/// The parameter names of a typed handler, shared by its copies.
using param_list = std::shared_ptr<const std::vector<param>>;

/// Converts argument `index`, naming the task and the parameter (by name
/// when it has one, else by position) when it does not fit.
template <class T>
T convert_argument(const std::string& task, const param_list& params, std::size_t index, const value& v) {
  if (!v.is<T>()) {
    auto which = params ? "'" + (*params)[index].name + "'" : std::to_string(index + 1);
    throw task_rejected("argument " + which + " of " + task + ": cannot convert " + to_string(v.type()) + " " +
                        to_json(v));
  }
  return v.as<T>();
}

template <class F, class Tuple, std::size_t... I>
auto invoke_typed(F& f, task_context& ctx, const param_list& params, const value::array& args,
                  std::index_sequence<I...>) {
  return f(ctx, convert_argument<std::tuple_element_t<I, Tuple>>(ctx.task(), params, I, args[I])...);
}

/// Binds a call to named parameters: the positional `args` (the step's input
/// first) left to right, then `kwargs` by name, then the defaults. Returns
/// one value per parameter, in order. Throws `task_rejected` naming the
/// parameter for too many positional arguments, an unknown keyword, a
/// parameter given twice or one left without a value.
value::array bind_arguments(const std::string& task, const std::vector<param>& params, const value::array& args,
                            const value::map& kwargs);

/// The positional check of an unnamed typed handler: any keyword argument
/// is refused (naming it), and the count must be `arity`.
void check_positional(const std::string& task, std::size_t arity, const value::array& args, const value::map& kwargs);

/// Refuses (`usage_error`) parameter names that cannot describe a handler
/// of `arity` arguments: a different count, an empty or repeated name, a
/// parameter without a default after one with a default.
void check_params(const std::string& task, const std::vector<param>& params, std::size_t arity);

/// Refuses (`usage_error`) a default its parameter's type cannot take, at
/// registration rather than on the first call that needs it.
template <class Tuple, std::size_t... I>
void check_defaults(const std::string& task, const std::vector<param>& params, std::index_sequence<I...>) {
  auto check_one = [&](std::size_t index, bool fits) {
    if (!fits) {
      throw usage_error("task '" + task + "': the default of parameter '" + params[index].name + "', " +
                        to_json(*params[index].default_value) + ", does not convert to the parameter's type");
    }
  };
  (check_one(I, !params[I].default_value || params[I].default_value->template is<std::tuple_element_t<I, Tuple>>()),
   ...);
}

/// Wraps a typed handler. `params` null: positional arguments only.
template <class F>
raw_handler make_raw_handler(F f, param_list params = nullptr) {
  using traits = handler_traits<std::decay_t<F>>;
  using args_tuple = typename traits::args;
  using result = typename traits::result_type;
  constexpr std::size_t arity = std::tuple_size_v<args_tuple>;
  return [f = std::move(f), params = std::move(params)](task_context& ctx,
                                                        const value::array& args) mutable -> task_result<value> {
    value::array bound;
    if (params) {
      bound = bind_arguments(ctx.task(), *params, args, ctx.kwargs());
    } else {
      check_positional(ctx.task(), arity, args, ctx.kwargs());
    }
    const auto& actual = params ? bound : args;
    auto seq = std::make_index_sequence<arity>{};
    if constexpr (std::is_void_v<result>) {
      invoke_typed<F, args_tuple>(f, ctx, params, actual, seq);
      return value{};
    } else if constexpr (is_task_result<result>::value) {
      auto r = invoke_typed<F, args_tuple>(f, ctx, params, actual, seq);
      if (r.is_retry()) {
        return r.retry();
      }
      if (r.is_replace()) {
        return r.replacement();
      }
      return value(std::move(r.result()));
    } else {
      return value(invoke_typed<F, args_tuple>(f, ctx, params, actual, seq));
    }
  };
}

/// Runs one chunk (a task message whose `chunk` option is set, built by
/// `chunks`): `args` must be one list of argument lists, and `handler` is
/// called with each of them in order, in this attempt and context. Returns
/// the list of results; the first retry request ends the chunk as that
/// request (the whole chunk runs again), and an exception escapes. Throws
/// `task_rejected` for arguments of another shape, and `task_error`
/// (`replace_in_chunk`) when a call asks to be replaced.
task_result<value> run_chunk(const raw_handler& handler, task_context& ctx, const value::array& args);

}  // namespace detail

/// Task name -> handler. Fill it before handing it to an engine; the engine
/// keeps a copy, so later changes do not affect a running engine.
class task_registry {
 public:
  /// Registers a typed handler `R(task_context&, A...)` that takes
  /// positional arguments only. Arguments convert from values with
  /// `value::as<A>()`; a mismatch, a wrong count or any keyword argument
  /// rejects the message (`bad_arguments`). `R` may be void, any type a
  /// `value` constructs from, or `task_result<...>`. Throws `usage_error` on
  /// a duplicate or empty name.
  template <class F>
  task_ref add(std::string name, F handler) {
    return add_raw(std::move(name), detail::make_raw_handler(std::move(handler)));
  }

  /// Registers a typed handler whose parameters have names, one per
  /// argument after the context: `tasks.add("add", {"x", "y"}, handler)`.
  /// A call binds its input and `args` by position, then `kwargs` by name,
  /// then the defaults (`trellis::param("y", 10)`, trailing parameters only).
  /// A parameter missing or given twice, or an unknown keyword, rejects the
  /// message (`bad_arguments`) naming it. Throws `usage_error` when the names
  /// do not fit the handler (count, empty or repeated name, a default that
  /// does not convert or is not trailing).
  template <class F>
  task_ref add(std::string name, std::vector<param> params, F handler) {
    using args_tuple = typename detail::handler_traits<std::decay_t<F>>::args;
    constexpr std::size_t arity = std::tuple_size_v<args_tuple>;
    detail::check_params(name, params, arity);
    detail::check_defaults<args_tuple>(name, params, std::make_index_sequence<arity>{});
    std::vector<std::string> names;
    for (const auto& p : params) {
      names.push_back(p.name);
    }
    auto list = std::make_shared<const std::vector<param>>(std::move(params));
    auto ref = add_raw(std::move(name), detail::make_raw_handler(std::move(handler), std::move(list)));
    find(ref.name())->params = std::move(names);
    return ref;
  }

  /// Registers an already type-erased handler.
  task_ref add_raw(std::string name, raw_handler handler);

  /// The task of that name, or null.
  const registered_task* find(const std::string& name) const;
  registered_task* find(const std::string& name);

  std::vector<std::string> names() const;
  bool empty() const noexcept { return tasks_.empty(); }

 private:
  std::map<std::string, registered_task, std::less<>> tasks_;
};

/// Checks that every task named in `workflow` (a canvas in its value shape,
/// `to_value(canvas)` or a parsed workflow file) is registered. The error
/// (`unknown_task`) names the place as the workflow-file parser does:
/// "$.chain[2]: unknown task 'ad'".
expected<void> check_tasks_known(const value& workflow, const task_registry& tasks);

}  // namespace trellis
