#include "native/canvas.hpp"

#include "native/errors.hpp"
#include "native/values.hpp"

#include <pybind11/stl.h>

#include <string>
#include <vector>

namespace py = pybind11;

namespace trellis::python {

canvas make_signature(const std::string& task, py::handle args, py::handle kwargs, py::handle options) {
  value::map shape;
  shape["task"] = task;
  shape["args"] = to_value(args, "arguments of " + task);
  shape["kwargs"] = to_value(kwargs, "keyword arguments of " + task);
  auto opts = to_value(options, "options of " + task);
  if (!opts.is_map() || !opts.as_map().empty()) {
    shape["options"] = std::move(opts);
  }
  return value_or_raise(canvas_from_value(value(std::move(shape))));
}

void bind_canvas(py::module_& m) {
  py::class_<canvas>(m, "Canvas", "A workflow: a task signature, chain, group or chord (trellis::canvas).")
      .def_property_readonly("kind", [](const canvas& c) { return to_string(c.type()); })
      .def_property_readonly("task_count", &canvas::task_count)
      .def("to_value", [](const canvas& c) { return to_python(to_value(c)); },
           "The canvas in the workflow-file shape, as dicts and lists.")
      .def("to_json", [](const canvas& c) { return to_json(c); })
      .def("__repr__", [](const canvas& c) { return "<trellis canvas " + to_json(c) + ">"; });

  m.def("signature", &make_signature, py::arg("task"), py::arg("args"), py::arg("kwargs"), py::arg("options"));
  // The builders may throw usage_error (an empty chain): ValueError.
  m.def("chain", [](std::vector<canvas> steps) { return chain(std::move(steps)); }, py::arg("steps"));
  m.def("group", [](std::vector<canvas> members) { return group(std::move(members)); }, py::arg("members"));
  m.def("chord", [](std::vector<canvas> header, const canvas& body) { return chord(std::move(header), body); },
        py::arg("header"), py::arg("body"));
  m.def(
      "canvas_from_value",
      [](py::handle shape) { return value_or_raise(canvas_from_value(to_value(shape, "workflow"))); },
      py::arg("shape"), "Parses a workflow in the workflow-file shape (a dict, as json.load gives it).");
}

}  // namespace trellis::python
