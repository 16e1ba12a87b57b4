// lm_head, AVX2 + FMA + F16C: 8 weights per step (vcvtph2ps / vpmovsxbd + vcvtdq2ps), one FMA per activation
// row, four rows of the weight at a time so four loads are in flight. dim must be a multiple of 8
// (the decoder's hidden size is a multiple of 128): the AVX-512 file at half width.
#include <immintrin.h>

#include "kernels/x86/avx2_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx2 {
namespace {

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load_i8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

template <typename T, typename Load>
void rows_times_x(const float* x, int64_t m, const T* w, const float* scale, int64_t dim, int64_t rows,
                  int64_t row_begin, int64_t row_end, float* y, Load load) {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) {
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * dim;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t d = 0; d < dim; d += 8) {
        const __m256 xv = _mm256_loadu_ps(xi + d);
        a0 = _mm256_fmadd_ps(load(w + (r + 0) * dim + d), xv, a0);
        a1 = _mm256_fmadd_ps(load(w + (r + 1) * dim + d), xv, a1);
        a2 = _mm256_fmadd_ps(load(w + (r + 2) * dim + d), xv, a2);
        a3 = _mm256_fmadd_ps(load(w + (r + 3) * dim + d), xv, a3);
      }
      const __m256 acc[4] = {a0, a1, a2, a3};
      for (int k = 0; k < 4; ++k)
        y[i * rows + r + k] = hsum(acc[k]) * (scale ? scale[r + k] : 1.0f);
    }
  }
  for (; r < row_end; ++r)
    for (int64_t i = 0; i < m; ++i) {
      __m256 a = _mm256_setzero_ps();
      for (int64_t d = 0; d < dim; d += 8) a = _mm256_fmadd_ps(load(w + r * dim + d), _mm256_loadu_ps(x + i * dim + d), a);
      y[i * rows + r] = hsum(a) * (scale ? scale[r] : 1.0f);
    }
}

}  // namespace

void lm_head_f16(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin,
                 int64_t row_end, float* y) {
  rows_times_x(x, m, w, nullptr, dim, rows, row_begin, row_end, y, load_f16);
}

void lm_head_i8(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                int64_t row_begin, int64_t row_end, float* y) {
  rows_times_x(x, m, w, scale, dim, rows, row_begin, row_end, y, load_i8);
}

}  // namespace qwenvl_edge::avx2
