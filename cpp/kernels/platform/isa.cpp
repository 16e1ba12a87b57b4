// Runtime choice of the kernel ISA path from the detected CPU features.
#include "qwenvl_edge/isa.h"

#include <cstdlib>
#include <stdexcept>

#include "qwenvl_edge/cpu_features.h"

namespace qwenvl_edge {
namespace {

constexpr Isa kAll[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kNeon, Isa::kNeonDot};

bool supported(Isa isa, const CpuFeatures& f) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return f.avx2 && f.fma && f.f16c;
    case Isa::kAvx512:
      return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.fma && f.f16c;
    case Isa::kAvx512Vnni:
      return supported(Isa::kAvx512, f) && f.avx512_vnni;
    case Isa::kNeon:
      return f.neon;
    case Isa::kNeonDot:
      return f.neon && f.dotprod;
  }
  return false;
}

std::string valid_names() {
  std::string names;
  for (Isa isa : kAll) names += std::string(names.empty() ? "" : ", ") + isa_name(isa);
  return names;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
    case Isa::kNeon:
      return "neon";
    case Isa::kNeonDot:
      return "neondot";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : kAll)
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("unknown ISA path '" + name + "'; valid: " + valid_names());
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAll)
    if (supported(isa, cpu_features())) out.push_back(isa);
  return out;
}

void require_isa(Isa isa) {
  if (!supported(isa, cpu_features()))
    throw std::invalid_argument(std::string("this CPU cannot run the '") + isa_name(isa) +
                                "' kernels (see qwenvl_edge.cpu_info())");
}

Isa default_isa() {
  if (const char* forced = std::getenv("QWENVL_ISA"); forced && *forced) {
    const Isa isa = parse_isa(forced);
    require_isa(isa);
    return isa;
  }
  return supported_isas().back();
}

}  // namespace qwenvl_edge
