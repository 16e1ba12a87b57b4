// matmul_q4 dispatch: gather act-order activations, then route to the variant of the requested ISA.
#include "qwenvl_edge/matmul_q4.h"

#include <vector>

namespace qwenvl_edge {
namespace {

// x [m][k] in the weight's sorted input order: row[i] = x[perm[i]]; no copy without a permutation.
const float* sorted_inputs(const float* x, int64_t m, int64_t k, const int32_t* perm, std::vector<float>& buf) {
  if (!perm) return x;
  buf.resize(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) buf[i * k + j] = x[i * k + perm[j]];
  return buf.data();
}

}  // namespace

#if defined(QWENVL_X86_KERNELS)
#define QWENVL_SIMD_CASES(call)   \
  case Isa::kAvx2:               \
    return avx2::call;           \
  case Isa::kAvx512:             \
    return avx512::call;         \
  case Isa::kAvx512Vnni:         \
    return avx512vnni::call;
#elif defined(QWENVL_ARM64_KERNELS)
#define QWENVL_SIMD_CASES(call) \
  case Isa::kNeon:             \
    return neon::call;         \
  case Isa::kNeonDot:          \
    return neondot::call;
#else
#define QWENVL_SIMD_CASES(call)
#endif

#define QWENVL_DISPATCH(isa, call) \
  switch (isa) {                   \
    QWENVL_SIMD_CASES(call)         \
    default:                       \
      return ref::call;            \
  }

void quantize_q8(Isa isa, const float* x, int64_t m, int64_t k, const int32_t* perm, const Q8Acts& out) {
  std::vector<float> buf;
  const float* xs = sorted_inputs(x, m, k, perm, buf);
  QWENVL_DISPATCH(isa, quantize_q8(xs, m, k, out))
}

void matmul_q4_exact(Isa isa, const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end) {
  std::vector<float> buf;
  const float* xs = sorted_inputs(x, m, w.k, w.perm, buf);
  QWENVL_DISPATCH(isa, matmul_q4_exact(xs, m, w, bias, y, tile_begin, tile_end))
}

void matmul_q4_q8(Isa isa, const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end) {
  QWENVL_DISPATCH(isa, matmul_q4_q8(x, m, w, bias, y, tile_begin, tile_end))
}

#undef QWENVL_DISPATCH
#undef QWENVL_SIMD_CASES

}  // namespace qwenvl_edge
