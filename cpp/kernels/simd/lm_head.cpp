// lm_head's float heads, written once over a path's vector type Vec and compiled once per path with
// its flags (cpp/CMakeLists.txt: avx2, avx512 and neon, each with QWENVL_VEC_H naming its vector type):
// y[i][r] = (x[i] . w[r]) * scale[r] (fp16 weights: no scale) for the rows [row_begin, row_end), the
// weights widened to float by Vec::load (vcvtph2ps / vpmovsxbd + vcvtdq2ps on x86, vcvt_f32_f16 /
// sxtl + scvtf on arm64), one FMA per activation row, four weight rows at a time so four loads are in
// flight. With Vec::kLmHeadAheadBytes > 0 (AVX-512) each 64-byte line is also prefetched that far ahead
// in its row as they are read; past a row's end, the same place in the next four rows. dim must be a
// multiple of 16 (the decoder's hidden size is a multiple of 128).
#include QWENVL_VEC_H

#include <cstdint>

#include "kernels/path_kernels.h"

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

template <typename T>
void rows_times_x(const float* x, int64_t m, const T* w, const float* scale, int64_t dim, int64_t rows,
                  int64_t row_begin, int64_t row_end, float* y) {
  using Reg = Vec::Reg;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));  // elements per cache line
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) {
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * dim;
      Reg a0 = Vec::zero(), a1 = a0, a2 = a0, a3 = a0;
      const bool prefetch = Vec::kLmHeadAheadBytes > 0 && i == 0 && r + 8 <= row_end;
      for (int64_t d = 0; d < dim; d += Vec::kLanes) {
        const Reg xv = Vec::load(xi + d);
        if (prefetch && d % kLine == 0) {  // each line once
          const int64_t ahead = d + Vec::kLmHeadAheadBytes / static_cast<int64_t>(sizeof(T));
          for (int k = 0; k < 4; ++k) {
            const T* line = ahead < dim ? w + (r + k) * dim + ahead : w + (r + 4 + k) * dim + ahead - dim;
            __builtin_prefetch(line);
          }
        }
        a0 = Vec::fma(Vec::load(w + (r + 0) * dim + d), xv, a0);
        a1 = Vec::fma(Vec::load(w + (r + 1) * dim + d), xv, a1);
        a2 = Vec::fma(Vec::load(w + (r + 2) * dim + d), xv, a2);
        a3 = Vec::fma(Vec::load(w + (r + 3) * dim + d), xv, a3);
      }
      float sums[4];
      Vec::store_sums4(sums, a0, a1, a2, a3, 1.0f);
      for (int k = 0; k < 4; ++k) y[i * rows + r + k] = sums[k] * (scale ? scale[r + k] : 1.0f);
    }
  }
  for (; r < row_end; ++r)  // fewer than four rows left
    for (int64_t i = 0; i < m; ++i) {
      Reg a = Vec::zero();
      for (int64_t d = 0; d < dim; d += Vec::kLanes) a = Vec::fma(Vec::load(w + r * dim + d), Vec::load(x + i * dim + d), a);
      y[i * rows + r] = Vec::sum(a) * (scale ? scale[r] : 1.0f);
    }
}

}  // namespace

void lm_head_f16(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin,
                 int64_t row_end, float* y) {
  rows_times_x(x, m, w, nullptr, dim, rows, row_begin, row_end, y);
}

void lm_head_i8(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                int64_t row_begin, int64_t row_end, float* y) {
  rows_times_x(x, m, w, scale, dim, rows, row_begin, row_end, y);
}

}  // namespace qwenvl_edge::QWENVL_ISA_NS
