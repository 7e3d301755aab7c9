#pragma once

/// @file
/// Conversion between `trellis::value` and Python objects, the one place
/// that decides how each kind maps:
///
///   nil <-> None      bool <-> bool     int <-> int (64-bit signed)
///   float <-> float   str <-> str       bin <-> bytes (bytearray in)
///   array <-> list (tuple in)           map <-> dict with str keys
///
/// Anything else (a set, an object, a dict with an int key, an int beyond
/// 64 bits) is refused with a Python TypeError or OverflowError naming
/// where it was found, so that what a task returns is what the next step
/// receives, unchanged, also across the wire. Callers hold the GIL.

#include "trellis/value.hpp"

#include <pybind11/pybind11.h>

#include <string>

namespace trellis::python {

/// A Python object as a value. `where` names it in an error ("result of
/// task 'add'", "argument 2"); nested places are appended ("[3]", "['k']").
value to_value(pybind11::handle obj, const std::string& where = "value");

/// A value as a new Python object.
pybind11::object to_python(const value& v);

/// A map as a dict (keyword arguments, status documents).
pybind11::dict to_python_dict(const value::map& m);

}  // namespace trellis::python
