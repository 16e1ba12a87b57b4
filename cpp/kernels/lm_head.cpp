// lm_head dispatch (lm_head.h): route to the variant of the requested ISA; the int8-activation head
// quantizes its activations here, in baseline code, first.
#include "qwenvl_edge/lm_head.h"

#include <cmath>
#include <vector>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

// AVX-512 VNNI adds nothing here (float activations), so it shares the AVX-512 variant.
#if defined(QWENVL_X86_KERNELS)
#define QWENVL_LM_HEAD_DISPATCH(isa, call) \
  switch (isa) {                           \
    case Isa::kAvx2:                       \
      return avx2::call;                   \
    case Isa::kAvx512:                     \
    case Isa::kAvx512Vnni:                 \
      return avx512::call;                 \
    default:                               \
      return ref::call;                    \
  }
#elif defined(QWENVL_ARM64_KERNELS)
#define QWENVL_LM_HEAD_DISPATCH(isa, call) \
  switch (isa) {                           \
    case Isa::kNeon:                       \
      return neon::call;                   \
    case Isa::kNeonDot:                    \
      return neondot::call;                \
    default:                               \
      return ref::call;                    \
  }
#else
#define QWENVL_LM_HEAD_DISPATCH(isa, call) \
  (void)isa;                               \
  return ref::call;
#endif

void lm_head_f16(Isa isa, const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows,
                 int64_t row_begin, int64_t row_end, float* y) {
  QWENVL_LM_HEAD_DISPATCH(isa, lm_head_f16(x, m, w, dim, rows, row_begin, row_end, y))
}

void lm_head_i8(Isa isa, const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                int64_t row_begin, int64_t row_end, float* y) {
  QWENVL_LM_HEAD_DISPATCH(isa, lm_head_i8(x, m, w, scale, dim, rows, row_begin, row_end, y))
}

void lm_head_i8_q8(Isa isa, const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                   int64_t row_begin, int64_t row_end, float* y) {
  // Each caller (thread) quantizes the m x dim activations itself: O(dim) against O(rows * dim).
  const int64_t groups = dim / kQ4Group;
  std::vector<int8_t> xq(m * dim);
  std::vector<float> d(m * groups);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = x + i * dim + g * kQ4Group;
      float amax = 0.0f;
      for (int t = 0; t < kQ4Group; ++t) amax = std::fmax(amax, std::fabs(xg[t]));
      const float dg = amax / 127.0f, inv = dg > 0.0f ? 1.0f / dg : 0.0f;
      for (int t = 0; t < kQ4Group; ++t) xq[i * dim + g * kQ4Group + t] = static_cast<int8_t>(std::nearbyint(xg[t] * inv));
      d[i * groups + g] = dg;
    }
#if defined(QWENVL_X86_KERNELS)
  if (isa == Isa::kAvx512Vnni)
    return avx512vnni::lm_head_i8_q8(xq.data(), d.data(), m, w, scale, dim, rows, row_begin, row_end, y);
#elif defined(QWENVL_ARM64_KERNELS)
  if (isa == Isa::kNeon)
    return neon::lm_head_i8_q8(xq.data(), d.data(), m, w, scale, dim, rows, row_begin, row_end, y);
  if (isa == Isa::kNeonDot)
    return neondot::lm_head_i8_q8(xq.data(), d.data(), m, w, scale, dim, rows, row_begin, row_end, y);
#else
  (void)isa;
#endif
  ref::lm_head_i8_q8(xq.data(), d.data(), m, w, scale, dim, rows, row_begin, row_end, y);
}

}  // namespace qwenvl_edge
