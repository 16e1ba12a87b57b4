// qwenvl_edge native core: version constants shared with Python.
//
// Basic usage from C++ (the Python module re-exports the same facts as qwenvl_edge._core):
//   #include "qwenvl_edge/core.h"
//   const qwenvl_edge::CpuFeatures& cpu = qwenvl_edge::cpu_features();
//   if (cpu.avx512_vnni) { ... }
#pragma once

#include "qwenvl_edge/cpu_features.h"

namespace qwenvl_edge {

// Package version, set by CMake from pyproject.toml.
inline constexpr const char* kVersion = QWENVL_EDGE_VERSION;

// Version of the bundle format (manifest + decoder weight file) that the exporters write and the
// runtime reads. Defined here only: Python reads it as qwenvl_edge._core.FORMAT_VERSION.
// Bump on every incompatible change.
inline constexpr int kFormatVersion = 2;  // 2: the decoder file records its config

}  // namespace qwenvl_edge
