#include "native/python_tasks.hpp"

#include "native/canvas.hpp"
#include "native/errors.hpp"
#include "native/values.hpp"

#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

namespace py = pybind11;

namespace trellis::python {

namespace {

/// Deletes a Python object with the GIL held. Handlers are copied and
/// destroyed by engine threads (a registry copy per engine), so the Python
/// function they call lives behind a shared pointer with this deleter.
/// During interpreter shutdown the object is left alone: the interpreter
/// frees everything itself, and taking the GIL then would hang.
struct gil_deleter {
  void operator()(py::object* obj) const {
    if (Py_IsInitialized() != 0 && _Py_IsFinalizing() == 0) {
      py::gil_scoped_acquire gil;
      delete obj;
    } else {
      obj->release();
      delete obj;
    }
  }
};

using shared_object = std::shared_ptr<py::object>;

shared_object share(py::object obj) { return shared_object(new py::object(std::move(obj)), gil_deleter{}); }

/// The exception classes of trellis/errors.py a handler may raise on purpose.
struct handler_exceptions {
  shared_object retry;
  shared_object reject;
  shared_object task_error;
  shared_object soft_limit;
};

handler_exceptions load_handler_exceptions() {
  auto errors = py::module_::import("trellis.errors");
  return {share(errors.attr("Retry")), share(errors.attr("Reject")), share(errors.attr("TaskError")),
          share(errors.attr("SoftTimeLimitExceeded"))};
}

/// The `task_context` of one call, as Python sees it. Valid only during the
/// call: afterwards `ctx` is null and every method raises, so a context a
/// handler kept never touches freed memory.
struct context_ref {
  task_context* ctx = nullptr;
  task_context& get() const {
    if (ctx == nullptr) {
      throw py::value_error("a TaskContext is valid only during its handler's call");
    }
    return *ctx;
  }
};

/// Clears the context when the call ends, however it ends.
struct context_scope {
  std::shared_ptr<context_ref> ref;
  ~context_scope() { ref->ctx = nullptr; }
};

std::optional<std::chrono::milliseconds> seconds_to_ms(py::handle seconds) {
  if (seconds.is_none()) {
    return std::nullopt;
  }
  double s = seconds.cast<double>();
  if (!std::isfinite(s) || s < 0) {
    return std::nullopt;
  }
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(s * 1000.0))};
}

raw_handler make_python_handler(shared_object fn, bool bind, handler_exceptions errors) {
  return [fn = std::move(fn), bind, errors = std::move(errors)](task_context& ctx,
                                                                const value::array& args) -> task_result<value> {
    py::gil_scoped_acquire gil;
    auto ref = std::make_shared<context_ref>(context_ref{&ctx});
    context_scope scope{ref};
    try {
      py::list positional;
      if (bind) {
        positional.append(py::cast(ref));
      }
      for (const auto& arg : args) {
        positional.append(to_python(arg));
      }
      py::object result = (*fn)(*py::tuple(positional), **to_python_dict(ctx.kwargs()));
      return to_value(result, "the result of task '" + ctx.task() + "'");
    } catch (py::error_already_set& e) {
      if (e.matches(*errors.retry)) {
        return retry_request{py::str(e.value()), seconds_to_ms(e.value().attr("countdown"))};
      }
      if (e.matches(*errors.reject)) {
        throw task_rejected(py::str(e.value()));
      }
      if (e.matches(*errors.soft_limit)) {
        throw soft_time_limit_exceeded(py::str(e.value()));
      }
      if (e.matches(*errors.task_error)) {
        throw task_error(py::str(e.value().attr("type")), py::str(e.value().attr("message")));
      }
      throw task_error(py::str(e.type().attr("__name__")), py::str(e.value()));
    } catch (const py::builtin_exception& e) {
      // A result the values layer cannot carry (values.hpp raises these).
      throw task_error(dynamic_cast<const py::value_error*>(&e) != nullptr ? "ValueError" : "TypeError", e.what());
    }
  };
}

/// Registration defaults from options in the workflow-file shape, checked
/// by the same parser as a signature's.
void apply_defaults(task_ref& ref, py::handle options) {
  if (options.is_none() || py::len(options) == 0) {
    return;
  }
  auto parsed = make_signature(ref.name(), py::list(), py::dict(), options);
  const auto& o = parsed.sig().options();
  if (o.queue) {
    ref.queue(*o.queue);
  }
  if (o.retry) {
    ref.retry(*o.retry);
  }
  if (o.time_limit) {
    ref.time_limit(*o.time_limit);
  }
  if (o.soft_time_limit) {
    ref.soft_time_limit(*o.soft_time_limit);
  }
  if (o.rate_limit) {
    ref.rate_limit(o.rate_limit->to_string());
  }
}

}  // namespace

void bind_python_tasks(py::module_& m) {
  py::class_<context_ref, std::shared_ptr<context_ref>>(
      m, "TaskContext", "What a running task knows about its call (trellis::task_context); valid during the call.")
      .def_property_readonly("task", [](const context_ref& r) { return r.get().task(); })
      .def_property_readonly("workflow_id", [](const context_ref& r) { return r.get().workflow_id(); })
      .def_property_readonly("node", [](const context_ref& r) { return r.get().node(); })
      .def_property_readonly("attempt", [](const context_ref& r) { return r.get().attempt(); })
      .def_property_readonly("idempotency_key", [](const context_ref& r) { return r.get().idempotency_key(); })
      .def_property_readonly("kwargs", [](const context_ref& r) { return to_python_dict(r.get().kwargs()); })
      .def_property_readonly("cancelled", [](const context_ref& r) { return r.get().cancelled(); })
      .def(
          "report_progress",
          [](const context_ref& r, std::int64_t done, std::optional<std::int64_t> total, std::string message) {
            r.get().report_progress(done, total, std::move(message));
          },
          py::arg("done"), py::arg("total") = py::none(), py::arg("message") = "")
      .def("set_state", [](const context_ref& r, const std::string& name) { r.get().set_state(name); })
      .def("clear_state", [](const context_ref& r) { r.get().clear_state(); });

  py::class_<python_registry>(m, "TaskRegistry", "Task name -> Python function (trellis::task_registry).")
      .def(py::init<>())
      .def(
          "add",
          [](python_registry& r, const std::string& name, py::function fn, py::handle defaults, bool bind) {
            auto ref = r.tasks.add_raw(name, make_python_handler(share(fn), bind, load_handler_exceptions()));
            apply_defaults(ref, defaults);
          },
          py::arg("name"), py::arg("fn"), py::arg("defaults") = py::dict(), py::arg("bind") = false)
      .def("names", [](const python_registry& r) { return r.tasks.names(); });
}

}  // namespace trellis::python
