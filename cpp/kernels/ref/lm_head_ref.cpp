// lm_head, scalar reference (lm_head.h): the definition every SIMD variant is tested against.
#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge::ref {

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

}  // namespace qwenvl_edge::ref
