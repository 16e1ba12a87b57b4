// What the CPU we run on can do, detected once at first use (cpuid + xgetbv on x86-64, hwcaps on
// arm64). Kernel dispatch reads this; benchmarks log it.
#pragma once

#include <string>

namespace qwenvl_edge {

struct CpuFeatures {
  std::string arch;   // "x86_64", "arm64" or "unknown"
  std::string brand;  // the CPU's model string where the OS or cpuid tells it
  int logical_cpus = 1;
  int physical_cores = 1;  // distinct (package, core) pairs: the default thread count

  // x86-64. The AVX and AVX-512 flags are set only when the OS also saves the wider registers
  // (XCR0), so a flag here means "usable", not just "present in silicon".
  bool sse42 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx_vnni = false;  // VEX-encoded VNNI (Alder Lake and later)
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool amx_int8 = false;  // present in silicon; Linux also wants an arch_prctl permission request

  // arm64.
  bool neon = false;
  bool dotprod = false;  // SDOT/UDOT
  bool i8mm = false;     // SMMLA
};

// Detected once, then cached; thread-safe.
const CpuFeatures& cpu_features();

}  // namespace qwenvl_edge
