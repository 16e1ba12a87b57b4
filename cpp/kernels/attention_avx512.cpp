// attention_scores, AVX-512: q . k[j] with 16-wide FMAs, four keys at a time (hd % 16 == 0).
#include <immintrin.h>

#include "qwenvl_edge/decoder_kernels.h"

namespace qwenvl_edge::avx512 {

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 qv = _mm512_loadu_ps(q + d);
      a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + (j + 0) * hd + d), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + (j + 1) * hd + d), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + (j + 2) * hd + d), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + (j + 3) * hd + d), a3);
    }
    scores[j + 0] = _mm512_reduce_add_ps(a0) * scale;
    scores[j + 1] = _mm512_reduce_add_ps(a1) * scale;
    scores[j + 2] = _mm512_reduce_add_ps(a2) * scale;
    scores[j + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; j < keys; ++j) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + j * hd + d), a);
    scores[j] = _mm512_reduce_add_ps(a) * scale;
  }
}

}  // namespace qwenvl_edge::avx512
