// Attention's inner loops, AVX-512: q . k[j] with 16-wide FMAs, four keys at a time, and the
// probability-weighted sum of value rows; fp16 caches converted with vcvtph2ps as they load.
// hd % 16 == 0.
#include <immintrin.h>

#include "qwenvl_edge/decoder_kernels.h"

namespace qwenvl_edge::avx512 {
namespace {

inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 qv = _mm512_loadu_ps(q + d);
      a0 = _mm512_fmadd_ps(qv, load(k + (j + 0) * hd + d), a0);
      a1 = _mm512_fmadd_ps(qv, load(k + (j + 1) * hd + d), a1);
      a2 = _mm512_fmadd_ps(qv, load(k + (j + 2) * hd + d), a2);
      a3 = _mm512_fmadd_ps(qv, load(k + (j + 3) * hd + d), a3);
    }
    scores[j + 0] = _mm512_reduce_add_ps(a0) * scale;
    scores[j + 1] = _mm512_reduce_add_ps(a1) * scale;
    scores[j + 2] = _mm512_reduce_add_ps(a2) * scale;
    scores[j + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; j < keys; ++j) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load(k + j * hd + d), a);
    scores[j] = _mm512_reduce_add_ps(a) * scale;
  }
}

// One 16-wide column strip at a time over all keys, four keys per step in four accumulators.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  for (int64_t d = 0; d < hd; d += 16) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j + 4 <= keys; j += 4) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 0]), load(v + (j + 0) * hd + d), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 1]), load(v + (j + 1) * hd + d), a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 2]), load(v + (j + 2) * hd + d), a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 3]), load(v + (j + 3) * hd + d), a3);
    }
    for (; j < keys; ++j) a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), load(v + j * hd + d), a0);
    _mm512_storeu_ps(out + d, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
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

}  // namespace qwenvl_edge::avx512
