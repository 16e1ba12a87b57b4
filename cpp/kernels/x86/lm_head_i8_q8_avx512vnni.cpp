// lm_head_i8_q8, AVX-512 VNNI: int8 weights x int8 activations with vpdpbusd. vpdpbusd multiplies
// unsigned by signed bytes, so the weight's magnitude |w| is the unsigned operand and the activation
// takes the weight's sign (x negated where w < 0; |x| <= 127 cannot overflow). Per 128-group: two
// 64-byte loads, int32 accumulation, one float FMA with the group's scale; four rows at a time.
#include <immintrin.h>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge::avx512vnni {
namespace {

inline __m512i signed_dot(__m512i acc, const int8_t* w, __m512i x) {
  const __m512i wv = _mm512_loadu_si512(w);
  const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(wv), _mm512_setzero_si512(), x);
  return _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(wv), xs);
}

}  // namespace

void lm_head_i8_q8(const int8_t* xq, const float* d, int64_t m, const int8_t* w, const float* scale, int64_t dim,
                   int64_t rows, int64_t row_begin, int64_t row_end, float* y) {
  const int64_t groups = dim / kQ4Group;
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4)
    for (int64_t i = 0; i < m; ++i) {
      __m512 total[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t g = 0; g < groups; ++g) {
        const int8_t* xg = xq + i * dim + g * kQ4Group;
        const __m512i x0 = _mm512_loadu_si512(xg), x1 = _mm512_loadu_si512(xg + 64);
        const __m512 dg = _mm512_set1_ps(d[i * groups + g]);
        for (int k = 0; k < 4; ++k) {
          const int8_t* wg = w + (r + k) * dim + g * kQ4Group;
          __m512i acc = signed_dot(_mm512_setzero_si512(), wg, x0);
          acc = signed_dot(acc, wg + 64, x1);
          total[k] = _mm512_fmadd_ps(dg, _mm512_cvtepi32_ps(acc), total[k]);
        }
      }
      for (int k = 0; k < 4; ++k) y[i * rows + r + k] = _mm512_reduce_add_ps(total[k]) * scale[r + k];
    }
  if (r < row_end) ref::lm_head_i8_q8(xq, d, m, w, scale, dim, rows, r, row_end, y);
}

}  // namespace qwenvl_edge::avx512vnni
