#include "native/engine.hpp"

#include "native/errors.hpp"
#include "native/python_tasks.hpp"
#include "native/values.hpp"
#include "native/waiting.hpp"

#include "trellis/engine.hpp"

#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace trellis::python {

namespace {

/// The engine as Python holds it. Closing drains the engine, which waits
/// for running handlers; they need the GIL, so it is released first. A call
/// in flight on another Python thread holds its own reference: it ends with
/// `shutting_down`, and the engine is freed (already drained, so without
/// waiting for anything) when the last reference goes.
class python_engine {
 public:
  python_engine(engine_config cfg, task_registry tasks) {
    py::gil_scoped_release release;
    engine_ = std::make_shared<engine>(std::move(cfg), std::move(tasks));
  }
  ~python_engine() { close(); }
  python_engine(const python_engine&) = delete;
  python_engine& operator=(const python_engine&) = delete;

  std::shared_ptr<engine> get() const {
    if (!engine_) {
      raise_error(error(errc::shutting_down, "the engine was closed"));
    }
    return engine_;
  }

  void close() {
    if (auto closing = std::move(engine_)) {
      py::gil_scoped_release release;
      closing->shutdown();
    }
  }

 private:
  std::shared_ptr<engine> engine_;
};

engine_config config_from(py::dict options) {
  engine_config cfg;
  for (auto [key, item] : options) {
    auto name = key.cast<std::string>();
    if (name == "db") {
      cfg.store_path = item.cast<std::string>();
    } else if (name == "synchronous") {
      cfg.synchronous = item.cast<std::string>();
    } else if (name == "concurrency") {
      cfg.concurrency = item.cast<std::size_t>();
    } else if (name == "queues") {
      cfg.queues = item.cast<std::vector<std::string>>();
    } else if (name == "jitter_seed") {
      cfg.jitter_seed = item.cast<std::uint64_t>();
    } else if (name == "max_batch") {
      cfg.max_batch = item.cast<std::size_t>();
    } else if (name == "fetch_batch") {
      cfg.fetch_batch = item.cast<std::size_t>();
    } else {
      throw py::type_error("unknown engine option '" + name +
                           "' (db, synchronous, concurrency, queues, jitter_seed, max_batch, fetch_batch)");
    }
  }
  if (auto ok = validate(cfg); !ok) {
    raise_error(ok.error());
  }
  return cfg;
}

template <class T, class Call>
T released(Call&& call) {
  py::gil_scoped_release release;
  return call();
}

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<workflow_handle>(m, "WorkflowHandle", "A workflow submitted to an embedded engine.")
      .def_property_readonly("id", &workflow_handle::id)
      .def("wait", &wait_for_result<workflow_handle>, py::arg("timeout") = py::none(),
           "The result; raises WorkflowFailed, Revoked or Timeout (seconds; None: no limit).")
      .def_property_readonly("state", &state_of<workflow_handle>)
      .def_property_readonly("error_details", [](const workflow_handle& h) {
        return to_python(released<value>([&] { return h.error_details(); }));
      });

  py::class_<python_engine>(m, "Engine", "An embedded engine (trellis::engine) running Python tasks.")
      .def(py::init([](const python_registry& tasks, py::dict options) {
             return std::make_unique<python_engine>(config_from(options), tasks.tasks);
           }),
           py::arg("tasks"), py::arg("options") = py::dict())
      .def(
          "submit",
          [](python_engine& e, const canvas& flow, std::optional<std::string> key) {
            auto eng = e.get();
            return value_or_raise(released<expected<workflow_handle>>([&] { return eng->submit(flow, key); }));
          },
          py::arg("canvas"), py::arg("key") = py::none())
      .def("find",
           [](python_engine& e, const std::string& id) {
             auto eng = e.get();
             return value_or_raise(released<expected<workflow_handle>>([&] { return eng->find(id); }));
           })
      .def("restored",
           [](python_engine& e) {
             auto eng = e.get();
             return released<std::vector<workflow_handle>>([&] { return eng->restored(); });
           })
      .def("status",
           [](python_engine& e, const std::string& id) {
             auto eng = e.get();
             return to_python(value_or_raise(released<expected<value>>([&] { return eng->status(id); })));
           })
      .def(
          "revoke",
          [](python_engine& e, const std::string& id, std::optional<std::int32_t> node, bool terminate) {
            auto eng = e.get();
            revoke_options opts{node, terminate};
            return to_python(value_or_raise(released<expected<value>>([&] { return eng->revoke(id, opts); })));
          },
          py::arg("id"), py::arg("node") = py::none(), py::arg("terminate") = false)
      .def("dead_letters",
           [](python_engine& e) {
             auto eng = e.get();
             return to_python(
                 value(value_or_raise(released<expected<value::array>>([&] { return eng->dead_letters(); }))));
           })
      .def("replay_dead_letter",
           [](python_engine& e, std::int64_t id) {
             auto eng = e.get();
             return value_or_raise(
                 released<expected<workflow_handle>>([&] { return eng->replay_dead_letter(id); }));
           })
      .def("metrics_text",
           [](python_engine& e, bool openmetrics) {
             auto eng = e.get();
             return eng->metrics_text(openmetrics ? metrics_format::openmetrics : metrics_format::prometheus);
           },
           py::arg("openmetrics") = false)
      .def("close", &python_engine::close, "Drains and stops; idempotent.");
}

}  // namespace trellis::python
