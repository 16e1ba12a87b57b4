// Argument conversion for qwenvl_edge._core (arguments.h).
#include "arguments.h"

namespace py = pybind11;

namespace qwenvl_edge::bindings {
namespace {

int g_max_threads = 0;

bool is_instance(py::handle value, const char* module, const char* type) {
  return py::isinstance(value, py::module_::import(module).attr(type));
}

}  // namespace

std::string type_name(py::handle value) { return py::str(py::type::handle_of(value).attr("__name__")); }

int64_t whole(py::handle value, const std::string& name, int64_t lo, int64_t hi) {
  if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr()))
    throw py::type_error(name + " must be an int, not " + type_name(value));
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow || x < lo || x > hi)
    throw py::value_error(name + (overflow ? "" : " = " + std::to_string(x)) + " is outside " + std::to_string(lo) +
                          ".." + std::to_string(hi));
  return x;
}

bool flag(py::handle value, const std::string& name) {
  if (PyBool_Check(value.ptr())) return value.ptr() == Py_True;
  if (is_instance(value, "numpy", "bool_")) return value.cast<bool>();
  throw py::type_error(name + " must be True or False, not " + type_name(value));
}

std::string path(py::handle value, const std::string& name) {
  if (!py::isinstance<py::str>(value) && !py::isinstance<py::bytes>(value) && !is_instance(value, "os", "PathLike"))
    throw py::type_error(name + " must be a str or os.PathLike, not " + type_name(value));
  return py::module_::import("os").attr("fsencode")(value).cast<std::string>();
}

DecoderConfig decoder_config(py::handle value) {
  if (!py::isinstance<py::dict>(value))
    throw py::type_error("config must be a dict of the decoder config keys (the manifest's decoder.config), not " +
                         type_name(value));
  const auto d = py::reinterpret_borrow<py::dict>(value);
  for (const auto item : d) {
    bool known = false;
    for (const ConfigKey& key : decoder_config_keys())
      known = known || (py::isinstance<py::str>(item.first) && item.first.cast<std::string>() == key.name);
    if (!known) throw py::value_error("decoder config: unknown key " + std::string(py::repr(item.first)));
  }
  DecoderConfig c;
  for (const ConfigKey& key : decoder_config_keys()) {
    if (!d.contains(key.name)) throw py::value_error(std::string("decoder config: missing '") + key.name + "'");
    const py::handle v = d[key.name];
    const std::string what = std::string("decoder config '") + key.name + "'";
    if (key.int_value) {
      c.*key.int_value = whole(v, what);
    } else if (key.bool_value) {
      c.*key.bool_value = flag(v, what);
    } else {
      const bool number = PyFloat_Check(v.ptr()) || (PyIndex_Check(v.ptr()) && !PyBool_Check(v.ptr())) ||
                          is_instance(v, "numpy", "floating");
      if (!number) throw py::type_error(what + " must be a number, not " + type_name(v));
      try {
        c.*key.float_value = py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
      } catch (const py::error_already_set&) {  // an int past the float range
        throw py::value_error(what + " is out of range");
      }
    }
  }
  return c;
}

int max_threads() { return g_max_threads; }

void load_limits() { g_max_threads = py::module_::import("qwenvl_edge.limits").attr("MAX_THREADS").cast<int>(); }

}  // namespace qwenvl_edge::bindings
