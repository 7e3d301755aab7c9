#include "trellis/actors/task_runner.hpp"

#include "trellis/detail/value_codec.hpp"

#include "trellis/clock.hpp"

#include <cxxabi.h>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <typeinfo>

namespace trellis::detail {

namespace {

envelope outcome_for(const envelope& task) {
  envelope out;
  out.type = envelope_type::outcome;
  out.id = task.id + ":out";
  out.workflow_id = task.workflow_id;
  out.node = task.node;
  out.attempt = task.attempt;
  out.task = task.task;
  out.trace = task.trace;
  return out;
}

/// One call of a handler, with what it needs and what it produced. Shared
/// with the thread that runs it when that thread may be abandoned.
struct handler_call {
  task_context ctx;
  value::array args;
  std::optional<task_result<value>> result;
  std::exception_ptr thrown;

  void run(const raw_handler& handler) noexcept {
    try {
      result.emplace(handler(ctx, args));
    } catch (...) {
      thrown = std::current_exception();
    }
  }
};

std::optional<std::int64_t> int_option(const envelope& task, const char* name) {
  auto i = task.options.find(name);
  if (i == task.options.end() || !i->second.is_integer()) {
    return std::nullopt;
  }
  return i->second.as_int();
}

envelope rejected(envelope out, errc reason, std::string message) {
  out.status = outcome_status::rejected;
  out.error_type = to_string(reason);
  out.error_message = std::move(message);
  out.sent_at = now_epoch_ms();
  return out;
}

}  // namespace

std::string exception_type_name(const std::exception& e) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status),
                                              std::free};
  return status == 0 && name ? std::string{name.get()} : std::string{typeid(e).name()};
}

envelope oversized_outcome(envelope outcome, std::size_t bytes, std::size_t limit) {
  auto message = "the outcome of " + outcome.task + " is " + std::to_string(bytes) + " bytes encoded, beyond the " +
                 std::to_string(limit) +
                 " bytes one event may carry; return a reference to large data (a key, a path, a URL) instead";
  outcome.payload = value{};
  outcome.type = envelope_type::outcome;  // a replacement too large becomes a rejection
  return rejected(std::move(outcome), errc::payload_too_large, std::move(message));
}

task_run run_task_message(std::string_view bytes, const task_registry& tasks, const run_hooks& hooks,
                          const canvas_limits& limits) {
  auto task = decode(bytes, envelope_limits{max_task_message_bytes(limits)});
  if (!task) {
    // Unreadable: nothing ties it to a node.
    return {poison_outcome(bytes, task.error()), "", std::nullopt};
  }
  if (task->type != envelope_type::task) {
    envelope out = outcome_for(*task);
    out.node = -1;
    out.payload = binary{std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
    return {rejected(std::move(out), errc::malformed_envelope,
                     std::string{"expected a task message on a task queue, got "} + to_string(task->type)),
            task->queue, std::nullopt};
  }
  auto out = outcome_for(*task);
  // Task options change what running means, so an option this build does not
  // know is refused like an unknown contract version, never ignored.
  for (const auto& [name, option] : task->options) {
    if (name != "idempotency_key" && name != "time_limit_ms" && name != "soft_time_limit_ms" &&
        name != "expires_at_ms" && name != "rate_limit" && name != "chunk") {
      return {rejected(std::move(out), errc::unsupported_version,
                       "task option '" + (name.size() > 60 ? name.substr(0, 60) + "..." : name) +
                           "' is not part of envelope version 1"),
              task->queue, std::nullopt};
    }
  }
  const auto* entry = tasks.find(task->task);
  if (entry == nullptr) {
    // A name from the wire may be megabytes long: the reason quotes its start.
    auto name = task->task.size() > 60 ? task->task.substr(0, 60) + "..." : task->task;
    return {
        rejected(std::move(out), errc::unknown_task, "no handler for task '" + name + "' is registered in this worker"),
        task->queue, std::nullopt};
  }
  bool chunk = false;
  if (auto c = task->options.find("chunk"); c != task->options.end()) {
    if (!c->second.is_bool()) {
      return {rejected(std::move(out), errc::malformed_envelope, "task option 'chunk' must be a bool"), task->queue,
              std::nullopt};
    }
    chunk = c->second.as_bool();
  }
  // A chunk calls the registered handler once per argument list, in this
  // attempt (the same on this thread, a limited thread or a child).
  raw_handler handler = entry->handler;
  if (chunk) {
    handler = [inner = entry->handler](task_context& ctx, const value::array& args) {
      return run_chunk(inner, ctx, args);
    };
  }
  // Before revocation and expiry: a copy of an attempt that ran here must
  // not report a second, different outcome for it either.
  if (hooks.claim && !hooks.claim(*task)) {
    return {std::move(out), task->queue, std::nullopt, true};
  }
  std::optional<rate_limit_spec> rate;
  if (auto r = task->options.find("rate_limit"); r != task->options.end()) {
    rate = r->second.is_string() ? parse_rate_limit(r->second.as_string()) : std::nullopt;
    if (!rate) {
      return {rejected(std::move(out), errc::malformed_envelope,
                       std::string{"task option 'rate_limit' must be "} + rate_limit_expectation),
              task->queue, std::nullopt};
    }
  } else if (entry->defaults.rate_limit) {
    // The dispatcher puts the task's default in the message when its own
    // registry has the task (trellis-demo, cli_main with the tasks); a
    // dispatcher without it (the generic `trellis dispatcher`) cannot, and
    // the limit of this worker's registration must not lapse for that.
    rate = entry->defaults.rate_limit;
  }
  // Revoked or expired: not run. Asked before a rate-limit wait (a revoked
  // task takes no slot) and again after it (it may have been revoked, or
  // expired, while it waited).
  auto refused = [&]() -> std::optional<task_run> {
    if (hooks.is_revoked && hooks.is_revoked(task->workflow_id, task->node)) {
      return task_run{rejected(std::move(out), errc::revoked,
                               "revoked: node " + std::to_string(task->node) + " of workflow " + task->workflow_id +
                                   " was revoked; the task was not run"),
                      task->queue, std::nullopt};
    }
    if (auto expires = task->options.find("expires_at_ms"); expires != task->options.end() &&
                                                              expires->second.is_integer() &&
                                                              now_epoch_ms() > expires->second.as_int()) {
      return task_run{rejected(std::move(out), errc::revoked,
                               "expired: not started by its expiry time, " +
                                   std::to_string(now_epoch_ms() - expires->second.as_int()) + " ms ago"),
                      task->queue, std::nullopt};
    }
    return std::nullopt;
  };
  if (auto no = refused()) {
    return std::move(*no);
  }
  if (rate && hooks.pace) {
    if (!hooks.pace(*task, *rate)) {
      task_run back{std::move(out), task->queue, std::nullopt};
      back.handed_back = true;
      return back;
    }
    if (auto no = refused()) {
      return std::move(*no);
    }
  }
  std::string key;
  if (auto k = task->options.find("idempotency_key"); k != task->options.end() && k->second.is_string()) {
    key = k->second.as_string();
  }
  double queue_wait = std::max<double>(0, static_cast<double>(now_epoch_ms() - task->sent_at) / 1000.0);
  auto hard_limit = int_option(*task, "time_limit_ms");
  auto soft_limit = int_option(*task, "soft_time_limit_ms");
  auto started = std::chrono::steady_clock::now();
  // Every attempt can be told to stop: at its soft time limit, when it is
  // abandoned at its hard one, or by a revoke with terminate (on_start).
  std::optional<stop_source> stop;
  if (soft_limit || hard_limit || hooks.on_start) {
    stop.emplace(soft_limit ? std::optional{started + std::chrono::milliseconds{*soft_limit}} : std::nullopt);
  }
  if (hooks.on_start) {
    hooks.on_start(*task, *stop);
  }
  std::optional<child_request> in_child;
  if (hooks.run_in_child) {
    in_child = child_request{task->task,   std::move(task->args),
                             task->kwargs, task->workflow_id,
                             task->node,   task->attempt,
                             key,          soft_limit,
                             hard_limit,   chunk};
  }
  auto progress = hooks.progress ? hooks.progress(*task) : nullptr;
  if (hooks.started) {
    hooks.started(*task);
  }
  handler_call local{task_context{task->task, task->workflow_id, task->node, task->attempt, std::move(key),
                                  task->kwargs, stop ? stop->token() : stop_token{}, progress},
                     std::move(task->args), std::nullopt, nullptr};
  handler_call* call = &local;
  std::shared_ptr<handler_call> shared;  // when the call may be abandoned
  if (in_child) {
    auto done = hooks.run_in_child(
        *task, *in_child,
        hard_limit ? std::optional{started + std::chrono::milliseconds{*hard_limit}} : std::nullopt, progress);
    auto failed = [&](const std::string& type) -> task_run {
      auto elapsed = std::chrono::steady_clock::now() - started;
      out.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
      out.status = outcome_status::failure;
      out.error_type = type;
      out.error_message = std::move(done.message);
      out.sent_at = now_epoch_ms();
      return {std::move(out), task->queue, queue_wait};
    };
    switch (done.how) {
      case child_outcome::kind::unavailable: {
        // Not the task's fault: it goes back unrun, for another worker.
        task_run back{std::move(out), task->queue, std::nullopt};
        back.handed_back = true;
        return back;
      }
      case child_outcome::kind::lost:
        return failed("worker_lost");
      case child_outcome::kind::timed_out:
        return failed(to_string(errc::time_limit_exceeded));
      case child_outcome::kind::terminated:
        return {rejected(std::move(out), errc::revoked, std::move(done.message)), task->queue, queue_wait};
      case child_outcome::kind::replied:
        break;
    }
    // The reply, turned back into what the handler did, so that it becomes
    // the outcome exactly as a call on this thread would.
    auto& reply = done.reply;
    switch (reply.kind) {
      case child_reply_kind::result:
        call->result.emplace(std::move(reply.result));
        break;
      case child_reply_kind::replace: {
        // Back to a canvas, as the dispatcher will read it; a child's value
        // that is no canvas fails the attempt here.
        auto replacement = canvas_from_value(reply.result, limits);
        if (!replacement) {
          done.message =
              "the handler child answered with a replacement that is no canvas: " + replacement.error().message();
          return failed(to_string(errc::invalid_workflow));
        }
        call->result.emplace(replace_request{std::move(*replacement)});
        break;
      }
      case child_reply_kind::retry: {
        retry_request again{std::move(reply.message), std::nullopt};
        if (reply.countdown_ms) {
          again.countdown = std::chrono::milliseconds{*reply.countdown_ms};
        }
        call->result.emplace(std::move(again));
        break;
      }
      case child_reply_kind::failure:
        call->thrown = reply.error_type == "unknown"
                           ? std::make_exception_ptr(42)  // not a std::exception, as in the child
                           : std::make_exception_ptr(task_error(reply.error_type, reply.message));
        break;
      case child_reply_kind::rejected:
        if (reply.error_type == to_string(errc::payload_too_large)) {
          out.payload = value{};
          return {rejected(std::move(out), errc::payload_too_large, std::move(reply.message)), task->queue,
                  queue_wait};
        }
        call->thrown = std::make_exception_ptr(task_rejected(reply.message));
        break;
      case child_reply_kind::progress:
        // The pool forwards progress and reads on, so it is never the
        // answer; defined all the same.
        done.message = "the handler child answered with a progress report";
        return failed("worker_lost");
    }
  } else if (hard_limit && hooks.run_limited) {
    shared = std::make_shared<handler_call>(std::move(local));
    call = shared.get();
    auto deadline = started + std::chrono::milliseconds{*hard_limit};
    if (!hooks.run_limited(
            *task, [shared, handler] { shared->run(handler); }, deadline)) {
      // Still running: wake a handler that waits on its stop token, and
      // leave the call (its result, whenever it comes) to the abandoned thread.
      stop->request_stop();
      auto elapsed = std::chrono::steady_clock::now() - started;
      out.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
      out.status = outcome_status::failure;
      out.error_type = to_string(errc::time_limit_exceeded);
      out.error_message = "attempt still running at its time limit of " + std::to_string(*hard_limit) +
                          " ms: its thread was abandoned and a late result is discarded";
      out.sent_at = now_epoch_ms();
      return {std::move(out), task->queue, queue_wait};
    }
  } else {
    call->run(handler);
  }
  try {
    if (call->thrown) {
      std::rethrow_exception(call->thrown);
    }
    auto& r = *call->result;
    if (r.is_replace()) {
      // An outcome of its own type: the dispatcher stores the canvas with it
      // and runs it in the step's place (workflow_graph::replace).
      out.type = envelope_type::replace;
      out.payload = to_value(r.replacement().with);
    } else if (r.is_retry()) {
      out.status = outcome_status::retry;
      out.error_type = "retry";
      out.error_message = r.retry().reason;
      if (r.retry().countdown) {
        out.payload = static_cast<std::int64_t>(r.retry().countdown->count());
      }
    } else {
      out.status = outcome_status::success;
      out.payload = std::move(r.result());
    }
  } catch (const task_rejected& e) {
    return {rejected(std::move(out), errc::bad_arguments, e.what()), task->queue, queue_wait};
  } catch (const task_error& e) {
    // The handler's own type, which retry filters select by; cut short like
    // a task name, so that no outcome carries megabytes of it.
    out.status = outcome_status::failure;
    out.error_type = e.type().empty() ? std::string{"task_error"} : e.type().substr(0, max_name_bytes);
    out.error_message = e.what();
  } catch (const std::exception& e) {
    out.status = outcome_status::failure;
    out.error_type = exception_type_name(e);
    out.error_message = e.what();
  } catch (...) {
    out.status = outcome_status::failure;
    out.error_type = "unknown";
    out.error_message = "the handler threw something that is not a std::exception";
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  out.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  if (hard_limit && out.duration_us > *hard_limit * 1000 && out.status == outcome_status::success) {
    out.type = envelope_type::outcome;  // a replacement that overran is discarded too
    // Run where it could not be abandoned (or returned just at the limit):
    // an overrun attempt is failed when it returns, its result discarded.
    out.status = outcome_status::failure;
    out.payload = value{};
    out.error_type = to_string(errc::time_limit_exceeded);
    out.error_message = "attempt ran " + std::to_string(out.duration_us / 1000) + " ms, over its time limit of " +
                        std::to_string(*hard_limit) + " ms";
  }
  if (out.status == outcome_status::success) {
    if (auto size = packed_size(out.payload); size > limits.max_result_bytes) {
      out.payload = value{};
      auto what = out.type == envelope_type::replace ? "the replacement canvas" : "the result";
      out.type = envelope_type::outcome;
      auto message = std::string{what} + " of " + out.task + " is " + std::to_string(size) +
                     " bytes encoded, beyond max_result_bytes (" + std::to_string(limits.max_result_bytes) +
                     "); return a reference to large data (a key, a path, a URL) or raise the limit";
      return {rejected(std::move(out), errc::payload_too_large, std::move(message)), task->queue, queue_wait};
    }
  }
  out.sent_at = now_epoch_ms();
  return {std::move(out), task->queue, queue_wait};
}

envelope poison_outcome(std::string_view bytes, const error& why) {
  // The original bytes travel in the outcome and end in the dead-letter
  // store as they arrived.
  envelope out;
  out.type = envelope_type::outcome;
  out.payload = binary{std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
  return rejected(std::move(out), why.code(), why.message());
}

}  // namespace trellis::detail
