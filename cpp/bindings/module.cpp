// The Python module qwenvl_edge._core: one small file per bound part of the core.
#include <pybind11/pybind11.h>

#include "qwenvl_edge/core.h"

namespace py = pybind11;

void bind_kernels(py::module_& m);  // kernels.cpp
void bind_decoder(py::module_& m);  // decoder.cpp
void bind_contract(py::module_& m);  // contract.cpp

namespace {

py::dict cpu_info() {
  const auto& f = qwenvl_edge::cpu_features();
  py::dict features;
  features["sse42"] = f.sse42;
  features["avx"] = f.avx;
  features["avx2"] = f.avx2;
  features["fma"] = f.fma;
  features["f16c"] = f.f16c;
  features["avx_vnni"] = f.avx_vnni;
  features["avx512f"] = f.avx512f;
  features["avx512bw"] = f.avx512bw;
  features["avx512vl"] = f.avx512vl;
  features["avx512dq"] = f.avx512dq;
  features["avx512_vnni"] = f.avx512_vnni;
  features["avx512_bf16"] = f.avx512_bf16;
  features["amx_int8"] = f.amx_int8;
  features["neon"] = f.neon;
  features["dotprod"] = f.dotprod;
  features["i8mm"] = f.i8mm;

  py::dict info;
  info["arch"] = f.arch;
  info["brand"] = f.brand;
  info["logical_cpus"] = f.logical_cpus;
  info["physical_cores"] = f.physical_cores;
  info["features"] = features;
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "qwenvl-edge native core";
  m.attr("__version__") = qwenvl_edge::kVersion;
  m.attr("FORMAT_VERSION") = qwenvl_edge::kFormatVersion;
  m.def("cpu_info", &cpu_info,
        "The CPU as the native core sees it: arch, brand, logical CPUs, physical cores and the "
        "usable ISA features (OS support included).");
  bind_contract(m);  // first: it registers the FormatError translation the others rely on
  bind_kernels(m);
  bind_decoder(m);
}
