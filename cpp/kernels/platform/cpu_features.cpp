// CPU feature detection for runtime kernel dispatch.
//
// x86-64: cpuid leaves 1 and 7 give what the silicon has; xgetbv(0) tells which register states the
// OS saves on a context switch. AVX needs XMM+YMM state, AVX-512 also the opmask and both ZMM halves:
// a CPU with AVX-512 under an OS (or hypervisor) that does not enable them must not run those paths.
// arm64: Linux hwcaps, or sysctl on macOS (where NEON is always present).
#include "qwenvl_edge/cpu_features.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define QWENVL_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define QWENVL_ARM64 1
#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#endif

namespace qwenvl_edge {
namespace {

#if defined(__linux__)
// Distinct (physical package, core) pairs from sysfs; 0 when sysfs does not say.
int linux_physical_cores(int logical) {
  std::set<std::pair<int, int>> cores;
  for (int cpu = 0; cpu < logical; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream pkg(dir + "physical_package_id"), core(dir + "core_id");
    int p = -1, c = -1;
    if (!(pkg >> p) || !(core >> c)) continue;
    cores.insert({p, c});
  }
  return static_cast<int>(cores.size());
}

std::string linux_cpuinfo_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}
#endif

#if defined(QWENVL_X86)
unsigned long long xgetbv0() {
  unsigned int lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

void detect_x86(CpuFeatures& f) {
  f.arch = "x86_64";
  unsigned int a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return;
  const unsigned int max_leaf = a;

  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & (1u << 20);
  const bool osxsave = c & (1u << 27);
  const bool avx_hw = c & (1u << 28);
  const bool fma_hw = c & (1u << 12);
  const bool f16c_hw = c & (1u << 29);

  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // XMM | YMM
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // XMM | YMM | opmask | ZMM_Hi256 | Hi16_ZMM

  f.avx = avx_hw && os_ymm;
  f.fma = fma_hw && os_ymm;
  f.f16c = f16c_hw && os_ymm;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = (b & (1u << 5)) && os_ymm;
    f.avx512f = (b & (1u << 16)) && os_zmm;
    f.avx512dq = (b & (1u << 17)) && os_zmm;
    f.avx512bw = (b & (1u << 30)) && os_zmm;
    f.avx512vl = (b & (1u << 31)) && os_zmm;
    f.avx512_vnni = (c & (1u << 11)) && os_zmm;
    f.amx_int8 = d & (1u << 25);
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f.avx_vnni = (a & (1u << 4)) && os_ymm;
    f.avx512_bf16 = (a & (1u << 5)) && os_zmm;
  }

  // Brand string: extended leaves 0x80000002..4.
  __get_cpuid(0x80000000, &a, &b, &c, &d);
  if (a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned int leaf = 0; leaf < 3; ++leaf) {
      unsigned int r[4];
      __get_cpuid(0x80000002 + leaf, &r[0], &r[1], &r[2], &r[3]);
      for (int i = 0; i < 4; ++i)
        for (int k = 0; k < 4; ++k) brand[leaf * 16 + i * 4 + k] = static_cast<char>(r[i] >> (8 * k));
    }
    f.brand = brand;
    const auto start = f.brand.find_first_not_of(' ');
    f.brand = start == std::string::npos ? std::string() : f.brand.substr(start);
  }
}
#endif

#if defined(QWENVL_ARM64)
void detect_arm64(CpuFeatures& f) {
  f.arch = "arm64";
  f.neon = true;  // Advanced SIMD is mandatory in AArch64
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.dotprod = hw & HWCAP_ASIMDDP;
#ifdef HWCAP2_I8MM
  f.i8mm = hw2 & HWCAP2_I8MM;
#else
  (void)hw2;
#endif
#elif defined(__APPLE__)
  auto has = [](const char* name) {
    int v = 0;
    size_t size = sizeof(v);
    return sysctlbyname(name, &v, &size, nullptr, 0) == 0 && v != 0;
  };
  f.dotprod = has("hw.optional.arm.FEAT_DotProd");
  f.i8mm = has("hw.optional.arm.FEAT_I8MM");
  char brand[128] = {};
  size_t size = sizeof(brand) - 1;
  if (sysctlbyname("machdep.cpu.brand_string", brand, &size, nullptr, 0) == 0) f.brand = brand;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
  f.arch = "unknown";
#if defined(QWENVL_X86)
  detect_x86(f);
#elif defined(QWENVL_ARM64)
  detect_arm64(f);
#endif
  const unsigned int hc = std::thread::hardware_concurrency();
  f.logical_cpus = hc > 0 ? static_cast<int>(hc) : 1;
  f.physical_cores = f.logical_cpus;
#if defined(__linux__)
  const int physical = linux_physical_cores(f.logical_cpus);
  if (physical > 0) f.physical_cores = physical;
  if (f.brand.empty()) f.brand = linux_cpuinfo_field("model name");
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();  // C++11 guarantees thread-safe initialisation
  return features;
}

}  // namespace qwenvl_edge
