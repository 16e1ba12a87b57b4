// The bundle contract as the core holds it, published for the Python side: the decoder config's keys,
// the decoder file's tensor table, dtype codes and magic, NTK alpha, and the one FormatError class
// (the core's FormatError is raised as qwenvl_edge.errors.FormatError).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <string>

#include "arguments.h"
#include "qwenvl_edge/decoder.h"
#include "qwenvl_edge/weights_file.h"

namespace py = pybind11;
using namespace qwenvl_edge;
using namespace qwenvl_edge::bindings;

namespace {

PyObject* g_format_error = nullptr;  // qwenvl_edge.errors.FormatError, held for the life of the process

py::dict config_keys() {
  py::dict keys;
  const py::module_ builtins = py::module_::import("builtins");
  for (const ConfigKey& key : decoder_config_keys())
    keys[key.name] = builtins.attr(key.int_value ? "int" : key.float_value ? "float" : "bool");
  return keys;
}

py::list tensors(py::handle config, py::handle lm_head) {
  const DecoderConfig c = decoder_config(config);
  check_config(c);
  if (!py::isinstance<py::str>(lm_head)) throw py::type_error("lm_head must be 'f16' or 'int8', not " + type_name(lm_head));
  const std::string head = lm_head.cast<std::string>();
  if (head != "f16" && head != "int8") throw py::value_error("lm_head must be 'f16' or 'int8', not '" + head + "'");
  py::list out;
  for (const TensorSpec& t : decoder_tensors(c, head == "int8" ? LmHead::kInt8 : LmHead::kF16))
    out.append(py::make_tuple(t.name, dtype_name(t.dtype), py::tuple(py::cast(t.shape)), t.required));
  return out;
}

}  // namespace

void bind_contract(py::module_& m) {
  load_limits();
  g_format_error = py::object(py::module_::import("qwenvl_edge.errors").attr("FormatError")).release().ptr();
  m.attr("FormatError") = py::handle(g_format_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FormatError& e) {
      PyErr_SetString(g_format_error, e.what());
    }
  });

  m.attr("DECODER_CONFIG_KEYS") = config_keys();
  py::dict dtypes;
  for (const DType d : {DType::kF32, DType::kF16, DType::kI8, DType::kI32, DType::kQ4Block})
    dtypes[dtype_name(d)] = static_cast<uint32_t>(d);
  m.attr("DECODER_DTYPES") = dtypes;
  m.attr("DECODER_FILE_MAGIC") = py::bytes(kWeightsMagic, sizeof kWeightsMagic);
  m.def("decoder_tensors", &tensors, py::arg("config"), py::arg("lm_head") = "f16",
        "Every tensor of a decoder file of this config, in file order: (name, dtype, shape, required); the "
        "optional ones are act-order permutations.");
  m.def(
      "ntk_alpha",
      [](py::handle prefill_len, py::handle seq_length) {
        return ntk_alpha(whole(prefill_len, "prefill_len", 1), whole(seq_length, "seq_length", 1));
      },
      py::arg("prefill_len"), py::arg("seq_length"),
      "Dynamic-NTK alpha the decoder rotates a prefill of prefill_len positions with (docs/model.md 4.4).");
}
