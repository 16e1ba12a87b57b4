// Attention's inner loops, AVX2 + FMA + F16C: q . k[j] four keys at a time, and the
// probability-weighted sum of value rows; fp16 caches converted with vcvtph2ps as they load.
// hd % 16 == 0.
//
// Both loops read the cache front to back, whole rows (or 64-column chunks of them) one after the
// other, and prefetch the rows kAhead keys on: a head's cache is too short a stream for the hardware
// prefetcher to ramp up on (see attention_avx512.cpp).
#include <immintrin.h>

#include "kernels/x86/avx2_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx2 {
namespace {

inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

constexpr int64_t kAhead = 8;  // rows

// Every 64-byte line of `count` elements from p.
template <typename T>
inline void prefetch_row(const T* p, int64_t count) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < count * static_cast<int64_t>(sizeof(T)); off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// [sum a, sum b, sum c, sum d] by horizontal adds, for four keys' dot products at once.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {  // four keys, one FMA chain each: four chains cover the latency
    if (j + kAhead + 4 <= keys) prefetch_row(k + (j + kAhead) * hd, 4 * hd);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, load(k + (j + 0) * hd + d), a0);
      a1 = _mm256_fmadd_ps(qv, load(k + (j + 1) * hd + d), a1);
      a2 = _mm256_fmadd_ps(qv, load(k + (j + 2) * hd + d), a2);
      a3 = _mm256_fmadd_ps(qv, load(k + (j + 3) * hd + d), a3);
    }
    _mm_storeu_ps(scores + j, _mm_mul_ps(hsum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
  }
  for (; j < keys; ++j) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load(k + j * hd + d), a);
      b = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), load(k + j * hd + d + 8), b);
    }
    scores[j] = hsum(_mm256_add_ps(a, b)) * scale;
  }
}

// out[0, 8 S) = sum_j p[j] * v[j][0, 8 S): S accumulators, each row's chunk read once, whole.
template <int S, typename T>
void value_rows(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  __m256 acc[S];
  for (int s = 0; s < S; ++s) acc[s] = _mm256_setzero_ps();
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kAhead < keys) prefetch_row(v + (j + kAhead) * hd, 8 * S);
    const __m256 pj = _mm256_set1_ps(p[j]);
    for (int s = 0; s < S; ++s) acc[s] = _mm256_fmadd_ps(pj, load(v + j * hd + 8 * s), acc[s]);
  }
  for (int s = 0; s < S; ++s) _mm256_storeu_ps(out + 8 * s, acc[s]);
}

// Column chunks of 64 (eight of the sixteen registers), then a 16- to 48-wide rest.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) value_rows<8>(p, v + d, keys, hd, out + d);
  if (hd - d == 16) value_rows<2>(p, v + d, keys, hd, out + d);
  if (hd - d == 32) value_rows<4>(p, v + d, keys, hd, out + d);
  if (hd - d == 48) value_rows<6>(p, v + d, keys, hd, out + d);
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
