// The instruction-set paths of the kernels and how one is chosen at run time.
//
// Every kernel family has a scalar reference and SIMD variants, each compiled in its own file with
// its own flags. The best path this CPU (and OS) supports is used unless QWENVL_ISA names another;
// naming one the machine cannot run is an error, never a silent fallback.
#pragma once

#include <string>
#include <vector>

namespace qwenvl_edge {

enum class Isa {
  kScalar,      // plain C++, the reference
  kAvx2,        // AVX2 + FMA + F16C
  kAvx512,      // AVX-512 F/BW/DQ/VL, int8 dot products with vpmaddubsw
  kAvx512Vnni,  // + AVX512-VNNI vpdpbusd
  kNeon,        // arm64 Advanced SIMD, int8 dot products with vmull_s8
  kNeonDot,     // + Armv8.2 dot product (SDOT)
};

const char* isa_name(Isa isa);

// Parses a name as isa_name() prints it; throws std::invalid_argument listing the valid names.
Isa parse_isa(const std::string& name);

// The paths this machine can run, reference first, best last.
std::vector<Isa> supported_isas();

// The path kernels use by default: QWENVL_ISA if set (validated), else the best supported one.
// Throws std::invalid_argument for an unknown or unsupported QWENVL_ISA.
Isa default_isa();

// Throws std::invalid_argument unless this machine can run `isa`.
void require_isa(Isa isa);

}  // namespace qwenvl_edge
