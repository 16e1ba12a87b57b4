// Attention's inner loops, AVX2 + FMA + F16C: q . k[j] with two 8-wide FMA chains per key, and the
// probability-weighted sum of value rows; fp16 caches converted with vcvtph2ps as they load.
// hd % 16 == 0.
#include <immintrin.h>

#include "avx2_common.h"

#include "qwenvl_edge/decoder_kernels.h"

namespace qwenvl_edge::avx2 {
namespace {

inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < keys; ++j) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load(k + j * hd + d), a);
      b = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), load(k + j * hd + d + 8), b);
    }
    scores[j] = hsum(_mm256_add_ps(a, b)) * scale;
  }
}

// One 16-wide column strip (two registers) at a time over all keys, two keys per step.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  for (int64_t d = 0; d < hd; d += 16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    int64_t j = 0;
    for (; j + 2 <= keys; j += 2) {
      const __m256 p0 = _mm256_set1_ps(p[j]), p1 = _mm256_set1_ps(p[j + 1]);
      a0 = _mm256_fmadd_ps(p0, load(v + j * hd + d), a0);
      a1 = _mm256_fmadd_ps(p0, load(v + j * hd + d + 8), a1);
      b0 = _mm256_fmadd_ps(p1, load(v + (j + 1) * hd + d), b0);
      b1 = _mm256_fmadd_ps(p1, load(v + (j + 1) * hd + d + 8), b1);
    }
    if (j < keys) {
      const __m256 p0 = _mm256_set1_ps(p[j]);
      a0 = _mm256_fmadd_ps(p0, load(v + j * hd + d), a0);
      a1 = _mm256_fmadd_ps(p0, load(v + j * hd + d + 8), a1);
    }
    _mm256_storeu_ps(out + d, _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(out + d + 8, _mm256_add_ps(a1, b1));
  }
}

}  // namespace

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  scores_of(q, k, keys, hd, scale, scores);
}
void attention_scores_f16(const float* q, const uint16_t* k, int64_t keys, int64_t hd, float scale, float* scores) {
  scores_of(q, k, keys, hd, scale, scores);
}
void attention_values(const float* p, const float* v, int64_t keys, int64_t hd, float* out) {
  values_of(p, v, keys, hd, out);
}
void attention_values_f16(const float* p, const uint16_t* v, int64_t keys, int64_t hd, float* out) {
  values_of(p, v, keys, hd, out);
}

}  // namespace qwenvl_edge::avx2
