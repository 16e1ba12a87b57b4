// lm_head, scalar reference and the ISA dispatch (lm_head.h).
#include "qwenvl_edge/lm_head.h"

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
