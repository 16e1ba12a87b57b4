// lm_head, scalar reference and the ISA dispatch (lm_head.h).
#include "qwenvl_edge/lm_head.h"

#include <cmath>
#include <vector>

#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {
namespace ref {

void lm_head_f16(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin,
                 int64_t row_end, float* y) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t d = 0; d < dim; ++d) acc += x[i * dim + d] * fp16_to_fp32(w[r * dim + d]);
      y[i * rows + r] = acc;
    }
}

void lm_head_i8(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                int64_t row_begin, int64_t row_end, float* y) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t d = 0; d < dim; ++d) acc += x[i * dim + d] * static_cast<float>(w[r * dim + d]);
      y[i * rows + r] = acc * scale[r];
    }
}

void lm_head_i8_q8(const int8_t* xq, const float* d, int64_t m, const int8_t* w, const float* scale, int64_t dim,
                   int64_t rows, int64_t row_begin, int64_t row_end, float* y) {
  const int64_t groups = dim / kQ4Group;
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t i = 0; i < m; ++i) {
      float total = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t acc = 0;
        for (int64_t k = g * kQ4Group; k < (g + 1) * kQ4Group; ++k) acc += xq[i * dim + k] * w[r * dim + k];
        total += d[i * groups + g] * static_cast<float>(acc);
      }
      y[i * rows + r] = total * scale[r];
    }
}

}  // namespace ref

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

}  // namespace qwenvl_edge

namespace qwenvl_edge {

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
