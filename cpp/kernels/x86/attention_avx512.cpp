// Attention's inner loops, AVX-512: q . k[j] with 16-wide FMAs, four keys at a time, and the
// probability-weighted sum of value rows; fp16 caches converted with vcvtph2ps as they load.
// hd % 16 == 0.
//
// Both loops read the cache front to back, one whole row after the other, and prefetch the rows
// kAhead keys on: a head's keys are only 32-64 KiB at a few hundred positions, too short a stream for
// the hardware prefetcher to ramp up on (it also stops at every 4 KiB page), so without this decode
// attention read the cache at half the speed of the weights.
#include <immintrin.h>

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx512 {
namespace {

constexpr int64_t kAhead = 8;  // rows: 2-4 KiB ahead at hd = 128

inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Every 64-byte line of `count` elements from p.
template <typename T>
inline void prefetch_row(const T* p, int64_t count) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < count * static_cast<int64_t>(sizeof(T)); off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    if (j + kAhead + 4 <= keys) prefetch_row(k + (j + kAhead) * hd, 4 * hd);
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

// out[0, 16 S) = sum_j p[j] * v[j][0, 16 S): S accumulators, each row read once, whole.
template <int S, typename T>
void value_rows(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  __m512 acc[S];
  for (int s = 0; s < S; ++s) acc[s] = _mm512_setzero_ps();
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kAhead < keys) prefetch_row(v + (j + kAhead) * hd, 16 * S);
    const __m512 pj = _mm512_set1_ps(p[j]);
    for (int s = 0; s < S; ++s) acc[s] = _mm512_fmadd_ps(pj, load(v + j * hd + 16 * s), acc[s]);
  }
  for (int s = 0; s < S; ++s) _mm512_storeu_ps(out + 16 * s, acc[s]);
}

// Column chunks of 128 (eight registers: the whole row at Qwen's hd = 128), then a 16- to 112-wide rest.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  int64_t d = 0;
  for (; d + 128 <= hd; d += 128) value_rows<8>(p, v + d, keys, hd, out + d);
  switch ((hd - d) / 16) {
    case 1: value_rows<1>(p, v + d, keys, hd, out + d); break;
    case 2: value_rows<2>(p, v + d, keys, hd, out + d); break;
    case 3: value_rows<3>(p, v + d, keys, hd, out + d); break;
    case 4: value_rows<4>(p, v + d, keys, hd, out + d); break;
    case 5: value_rows<5>(p, v + d, keys, hd, out + d); break;
    case 6: value_rows<6>(p, v + d, keys, hd, out + d); break;
    case 7: value_rows<7>(p, v + d, keys, hd, out + d); break;
    default: break;
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
