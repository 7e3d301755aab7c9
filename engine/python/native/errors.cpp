#include "native/errors.hpp"

#include "native/values.hpp"

namespace py = pybind11;

namespace trellis::python {

namespace {

py::object exception_for(const error& err, const value& details) {
  auto factory = py::module_::import("trellis.errors").attr("from_native");
  return factory(to_string(err.code()), err.message(), to_python(details));
}

}  // namespace

void raise_error(const error& err, const value& details) {
  auto instance = exception_for(err, details);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
  throw py::error_already_set();
}

void register_error_translation() {
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) {
        std::rethrow_exception(thrown);
      }
    } catch (const usage_error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const setup_error& e) {
      auto instance = exception_for(error(e.code(), e.what()), value{});
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
    }
  });
}

}  // namespace trellis::python
