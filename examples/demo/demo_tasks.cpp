#include "demo_tasks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace trellis::demo {

namespace {

/// Adds numbers the way Python would: integers stay integers. Python's
/// integers never overflow; these are 64-bit, so a result outside int64 is
/// refused (`bad_arguments`) rather than wrapped (undefined behaviour).
value add_values(const value& x, const value& y) {
  if (x.is_integer() && y.is_integer()) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(x.as_int(), y.as_int(), &sum)) {
      throw task_rejected("add: " + to_json(x) + " + " + to_json(y) + " overflows a 64-bit integer");
    }
    return sum;
  }
  return x.as_float() + y.as_float();
}

value mul_values(const value& x, const value& y) {
  if (x.is_integer() && y.is_integer()) {
    std::int64_t product = 0;
    if (__builtin_mul_overflow(x.as_int(), y.as_int(), &product)) {
      throw task_rejected("mul: " + to_json(x) + " * " + to_json(y) + " overflows a 64-bit integer");
    }
    return product;
  }
  return x.as_float() * y.as_float();
}

/// Rejects anything that is not a number, so a wrong argument is a
/// `bad_arguments` dead letter rather than an exception deep inside.
const value& number(const std::string& task, const value& v) {
  if (!v.is_number()) {
    throw task_rejected(task + ": expected a number, got " + to_json(v));
  }
  return v;
}

}  // namespace

void register_demo_tasks(task_registry& tasks) {
  // Named parameters, so a workflow may pass any of them by keyword, as a
  // Celery call would: {"task": "add", "kwargs": {"x": 1, "y": 2}}.
  tasks.add("add", {"x", "y"},
            [](task_context&, value x, value y) { return add_values(number("add", x), number("add", y)); });
  tasks.add("mul", {"x", "y"},
            [](task_context&, value x, value y) { return mul_values(number("mul", x), number("mul", y)); });
  tasks.add("xsum", {"values"}, [](task_context&, value::array values) {
    value total = std::int64_t{0};
    for (const auto& v : values) {
      total = add_values(total, number("xsum", v));
    }
    return total;
  });
  tasks.add("identity", {"value"}, [](task_context&, value v) { return v; });
  // Dynamic fan-out (Celery's `replace`): replaces itself with a group of
  // identity(i) for i in 0..n-1, so its result is [0, 1, ..., n-1].
  tasks.add("split", {"n"}, [](task_context& ctx, std::int64_t n) -> task_result<value> {
    if (n < 0 || n > 100000) {
      throw task_rejected("split: n must be from 0 to 100000, got " + std::to_string(n));
    }
    std::vector<canvas> members;
    members.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      members.emplace_back(signature("identity", {i}));
    }
    return ctx.replace(group(std::move(members)));
  });
  tasks.add("noop", [](task_context&) {});
  // Sleeps, and observes its stop: at its soft time limit (or when its
  // hard limit gives it up) it wakes early and ends with
  // soft_time_limit_exceeded.
  tasks.add("sleep_ms", {"ms"}, [](task_context& ctx, std::int64_t ms) {
    ctx.sleep_for(std::chrono::milliseconds{ms});
    return ms;
  });
  // Busy-waits for `ms` and never looks at cancellation: a handler that
  // only a hard time limit ends (its thread is abandoned, still spinning).
  tasks.add("spin", {"ms"}, [](task_context&, std::int64_t ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
    while (std::chrono::steady_clock::now() < until) {
      // reading the clock, and nothing else
    }
    return ms;
  });
  tasks.add("fail", {"message"},
            [](task_context&, std::string message) -> value { throw std::runtime_error(message); });
  // `error_type` (by keyword, say) makes the failures `task_error`s of that
  // type, for the retry filters; by default they are std::runtime_error.
  tasks.add("flaky", {"failures", param("error_type", "")},
            [](task_context& ctx, std::int64_t failures, std::string error_type) -> std::int64_t {
              if (ctx.attempt() <= failures) {
                auto message = "flaky: attempt " + std::to_string(ctx.attempt()) + " of " + std::to_string(failures) +
                               " planned failures";
                if (!error_type.empty()) {
                  throw task_error(error_type, message);
                }
                throw std::runtime_error(message);
              }
              return ctx.attempt();
            });
  // Exists for the "worker lost" test (tests/integration/cluster_partition_test.cpp):
  // it kills its own worker process on every delivery, as a handler that
  // crashes the process would, so the task is never acknowledged and
  // JetStream gives up on it after MaxDeliver deliveries. Never use it
  // embedded: it kills the engine's process too.
  tasks.add("crash_worker", [](task_context&) { ::kill(::getpid(), SIGKILL); });
  // For the process pool (tests/integration/process_pool_test.cpp,
  // docs/operations.md "Process pool"): a handler that crashes its process
  // the way buggy native code does, by "abort" (std::abort, SIGABRT) or
  // "segv" (SIGSEGV). Under `--pool process` only its child dies; under the
  // thread pool, or embedded, the whole process does.
  tasks.add("crash", {"how"}, [](task_context&, std::string how) -> value {
    if (how == "abort") {
      std::abort();
    }
    if (how == "segv") {
      std::raise(SIGSEGV);
    }
    throw task_rejected("crash: how must be \"abort\" or \"segv\", got \"" + how.substr(0, 40) + "\"");
  });
  // For large values (tests and bench/): a string of `bytes` bytes, and the
  // total length of a list of strings, say a chord's header results.
  tasks.add("blob", {"bytes"}, [](task_context&, std::int64_t bytes) {
    if (bytes < 0 || bytes > (std::int64_t{1} << 30)) {
      throw task_rejected("blob: size " + std::to_string(bytes) + " is not from 0 to 1 GiB");
    }
    return std::string(static_cast<std::size_t>(bytes), 'b');
  });
  tasks.add("measure", {"values"}, [](task_context&, std::vector<std::string> parts) {
    std::int64_t total = 0;
    for (const auto& p : parts) {
      total += static_cast<std::int64_t>(p.size());
    }
    return total;
  });
  // When the handler started, in microseconds since the Unix epoch, as one
  // line appended to the file (one write with O_APPEND, so the lines of
  // several worker processes never mix); returns the same time. For the
  // rate-limit tests, which read the start times back.
  tasks.add("stamp", {"path"}, [](task_context&, std::string path) {
    auto started = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    auto line = std::to_string(started) + "\n";
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw std::runtime_error("stamp: cannot open " + path);
    }
    auto written = ::write(fd, line.data(), line.size());
    ::close(fd);
    if (written != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error("stamp: cannot write to " + path);
    }
    return static_cast<std::int64_t>(started);
  });
  tasks.add("touch", {"path"}, [](task_context&, std::string path) {
    {
      std::ofstream out{path, std::ios::app};
      if (!out) {
        throw std::runtime_error("touch: cannot open " + path);
      }
      out << "touched\n";
    }
    std::ifstream in{path};
    std::int64_t lines = 0;
    for (std::string line; std::getline(in, line);) {
      ++lines;
    }
    return lines;
  });
  // Reports progress while it waits for a file: state WAITING with `steps`
  // of `steps` done once started, then FINISHING and the last report once
  // `gate` exists. Tests create the file to let it go on.
  // [progress]
  tasks.add("report_and_wait", {"steps", "gate"}, [](task_context& ctx, std::int64_t steps, std::string gate) {
    ctx.set_state("WAITING");
    for (std::int64_t i = 1; i <= steps; ++i) {
      ctx.report_progress(i, steps + 1, "step " + std::to_string(i));
    }
    while (!std::ifstream{gate}) {
      ctx.sleep_for(std::chrono::milliseconds{10});
    }
    ctx.set_state("FINISHING");
    ctx.report_progress(steps + 1, steps + 1, "done");
    return steps + 1;
  });
  // [progress]
}

}  // namespace trellis::demo
