// lm_head, AVX-512: 16 weights per step (vcvtph2ps / vpmovsxbd + vcvtdq2ps), one FMA per activation
// row, four rows of the weight at a time so four loads are in flight, each line prefetched 1 KiB
// ahead as they are read (four 8 KiB streams at once are more than the hardware prefetcher keeps
// ahead of: +7% read rate for the fp16 head with the next rows prefetched, +4% more this way, NOTES.md). dim must be a multiple of 16 (the
// decoder's hidden size is a multiple of 128).
#include <immintrin.h>

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx512 {
namespace {

constexpr int64_t kAheadBytes = 1024;  // best of 512-4096 (NOTES.md)

inline __m512 load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load_i8(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

template <typename T, typename Load>
void rows_times_x(const float* x, int64_t m, const T* w, const float* scale, int64_t dim, int64_t rows,
                  int64_t row_begin, int64_t row_end, float* y, Load load) {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) {
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * dim;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      const bool prefetch = i == 0 && r + 8 <= row_end;
      for (int64_t d = 0; d < dim; d += 16) {
        const __m512 xv = _mm512_loadu_ps(xi + d);
        if (prefetch && d % (64 / sizeof(T)) == 0) {  // each 64-byte line once, kAheadBytes ahead in its row
          const int64_t ahead = d + kAheadBytes / static_cast<int64_t>(sizeof(T));
          for (int k = 0; k < 4; ++k) {  // past a row's end: the same place in the next four rows
            const T* line = ahead < dim ? w + (r + k) * dim + ahead : w + (r + 4 + k) * dim + ahead - dim;
            _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
          }
        }
        a0 = _mm512_fmadd_ps(load(w + (r + 0) * dim + d), xv, a0);
        a1 = _mm512_fmadd_ps(load(w + (r + 1) * dim + d), xv, a1);
        a2 = _mm512_fmadd_ps(load(w + (r + 2) * dim + d), xv, a2);
        a3 = _mm512_fmadd_ps(load(w + (r + 3) * dim + d), xv, a3);
      }
      const __m512 acc[4] = {a0, a1, a2, a3};
      for (int k = 0; k < 4; ++k)
        y[i * rows + r + k] = _mm512_reduce_add_ps(acc[k]) * (scale ? scale[r + k] : 1.0f);
    }
  }
  for (; r < row_end; ++r)
    for (int64_t i = 0; i < m; ++i) {
      __m512 a = _mm512_setzero_ps();
      for (int64_t d = 0; d < dim; d += 16) a = _mm512_fmadd_ps(load(w + r * dim + d), _mm512_loadu_ps(x + i * dim + d), a);
      y[i * rows + r] = _mm512_reduce_add_ps(a) * (scale ? scale[r] : 1.0f);
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

}  // namespace qwenvl_edge::avx512
