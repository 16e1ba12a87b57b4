// lm_head_i8_q8 around a path's variant (lm_head.h): the activations are quantized here, in baseline
// code, then the table's variant runs.
#include "qwenvl_edge/lm_head.h"

#include <cmath>
#include <vector>

#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

void lm_head_i8_q8(const LmHeadKernels& kernels, const float* x, int64_t m, const int8_t* w, const float* scale,
                   int64_t dim, int64_t rows, int64_t row_begin, int64_t row_end, float* y) {
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
  kernels.lm_head_i8_q8(xq.data(), d.data(), m, w, scale, dim, rows, row_begin, row_end, y);
}

}  // namespace qwenvl_edge
