// attention_scores, AVX2 + FMA: q . k[j] with two 8-wide FMA chains per key (hd % 16 == 0).
#include <immintrin.h>

#include "avx2_common.h"

#include "qwenvl_edge/decoder_kernels.h"

namespace qwenvl_edge::avx2 {

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < keys; ++j) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + j * hd + d), a);
      b = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(k + j * hd + d + 8), b);
    }
    scores[j] = hsum(_mm256_add_ps(a, b)) * scale;
  }
}

}  // namespace qwenvl_edge::avx2
