#include "native/values.hpp"

#include <cstdint>
#include <string>

namespace py = pybind11;

namespace trellis::python {

namespace {

/// Python nests freely; a value nested deeper than this is almost surely a
/// cycle (a list that contains itself), which would otherwise recurse until
/// the stack ends.
constexpr int max_depth = 256;

[[noreturn]] void refuse(const std::string& where, py::handle obj) {
  throw py::type_error(where + ": a " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                       " is not a trellis value (None, bool, int, float, str, bytes, list, tuple or a dict "
                       "with str keys)");
}

value convert(py::handle obj, const std::string& where, int depth) {
  if (depth > max_depth) {
    throw py::value_error(where + ": nested deeper than " + std::to_string(max_depth) + " levels (a cycle?)");
  }
  if (obj.is_none()) {
    return value{};
  }
  // bool before int: Python's bool is an int subclass.
  if (PyBool_Check(obj.ptr())) {
    return value(obj.ptr() == Py_True);
  }
  if (PyLong_Check(obj.ptr())) {
    int overflow = 0;
    long long i = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow != 0) {
      throw py::value_error(where + ": integer " + std::string(py::str(obj)) +
                            " is beyond the 64-bit signed range of a trellis value");
    }
    if (i == -1 && PyErr_Occurred()) {
      throw py::error_already_set();
    }
    return value(static_cast<std::int64_t>(i));
  }
  if (PyFloat_Check(obj.ptr())) {
    return value(PyFloat_AsDouble(obj.ptr()));
  }
  if (PyUnicode_Check(obj.ptr())) {
    return value(obj.cast<std::string>());
  }
  if (PyBytes_Check(obj.ptr()) || PyByteArray_Check(obj.ptr())) {
    std::string bytes = PyBytes_Check(obj.ptr()) ? std::string(py::reinterpret_borrow<py::bytes>(obj))
                                                 : std::string(PyByteArray_AsString(obj.ptr()),
                                                               static_cast<std::size_t>(PyByteArray_Size(obj.ptr())));
    return value(binary{std::vector<std::uint8_t>(bytes.begin(), bytes.end())});
  }
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    value::array out;
    auto seq = py::reinterpret_borrow<py::sequence>(obj);
    out.reserve(seq.size());
    std::size_t index = 0;
    for (auto item : seq) {
      out.push_back(convert(item, where + "[" + std::to_string(index++) + "]", depth + 1));
    }
    return value(std::move(out));
  }
  if (PyDict_Check(obj.ptr())) {
    value::map out;
    for (auto [key, item] : py::reinterpret_borrow<py::dict>(obj)) {
      if (!PyUnicode_Check(key.ptr())) {
        throw py::type_error(where + ": dict key " + std::string(py::repr(key)) +
                             " is not a str (a trellis map has string keys)");
      }
      auto name = key.cast<std::string>();
      out.emplace(name, convert(item, where + "['" + name + "']", depth + 1));
    }
    return value(std::move(out));
  }
  refuse(where, obj);
}

}  // namespace

value to_value(py::handle obj, const std::string& where) { return convert(obj, where, 0); }

py::object to_python(const value& v) {
  switch (v.type()) {
    case value::kind::nil:
      return py::none();
    case value::kind::boolean:
      return py::bool_(v.as_bool());
    case value::kind::integer:
      return py::int_(v.as_int());
    case value::kind::floating:
      return py::float_(v.as_float());
    case value::kind::string:
      // Invalid UTF-8 (from another language's worker) is kept, escaped,
      // rather than failing the whole conversion.
      return py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
          v.as_string().data(), static_cast<Py_ssize_t>(v.as_string().size()), "surrogateescape"));
    case value::kind::binary: {
      const auto& bytes = v.as_binary().bytes;
      return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    case value::kind::array: {
      const auto& items = v.as_array();
      py::list out(items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        out[i] = to_python(items[i]);
      }
      return std::move(out);
    }
    case value::kind::map:
      return to_python_dict(v.as_map());
  }
  return py::none();
}

py::dict to_python_dict(const value::map& m) {
  py::dict out;
  for (const auto& [key, item] : m) {
    out[py::str(key)] = to_python(item);
  }
  return out;
}

}  // namespace trellis::python
