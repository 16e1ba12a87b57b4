// Attention's inner loops, arm64 NEON. fp16 caches are widened with vcvt_f32_f16 as they load (base
// Armv8-a AdvSIMD); hd % 16 == 0. Compiled once, for both the neon and neondot paths.
//
// Scores: four keys at a time with two FMA chains each (eight chains cover the FMA latency); the
// four dot products are reduced into one vector by pairwise adds, scaled and stored together.
// Values: row by row in 64-column chunks (sixteen accumulators), each chunk of a row read once.
// Both loops prefetch the rows kAhead keys on: a head's cache is too short a stream for the
// hardware prefetcher to ramp up on (see attention_avx512.cpp).
#include <arm_neon.h>

#include "kernels/arm/neon_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::neon {
namespace {

// Eight cache elements as floats: lo = p[0..3], hi = p[4..7].
inline void load8(const float* p, float32x4_t& lo, float32x4_t& hi) {
  lo = vld1q_f32(p);
  hi = vld1q_f32(p + 4);
}
inline void load8(const uint16_t* p, float32x4_t& lo, float32x4_t& hi) {
  const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
  lo = vcvt_f32_f16(vget_low_f16(h));
  hi = vcvt_high_f32_f16(h);
}

constexpr int64_t kAhead = 8;  // rows

// Every 64-byte line of `count` elements from p.
template <typename T>
inline void prefetch_row(const T* p, int64_t count) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < count * static_cast<int64_t>(sizeof(T)); off += 64) __builtin_prefetch(c + off);
}

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    if (j + kAhead + 4 <= keys) prefetch_row(k + (j + kAhead) * hd, 4 * hd);
    float32x4_t lo[4], hi[4];
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; d += 8) {
      const float32x4_t q0 = vld1q_f32(q + d), q1 = vld1q_f32(q + d + 4);
      for (int r = 0; r < 4; ++r) {
        float32x4_t k0, k1;
        load8(k + (j + r) * hd + d, k0, k1);
        lo[r] = vfmaq_f32(lo[r], q0, k0);
        hi[r] = vfmaq_f32(hi[r], q1, k1);
      }
    }
    const float32x4_t dots = hsum4(vaddq_f32(lo[0], hi[0]), vaddq_f32(lo[1], hi[1]), vaddq_f32(lo[2], hi[2]),
                                   vaddq_f32(lo[3], hi[3]));
    vst1q_f32(scores + j, vmulq_n_f32(dots, scale));
  }
  for (; j < keys; ++j) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 16) {
      float32x4_t k0, k1, k2, k3;
      load8(k + j * hd + d, k0, k1);
      load8(k + j * hd + d + 8, k2, k3);
      a0 = vfmaq_f32(a0, vld1q_f32(q + d), k0);
      a1 = vfmaq_f32(a1, vld1q_f32(q + d + 4), k1);
      a2 = vfmaq_f32(a2, vld1q_f32(q + d + 8), k2);
      a3 = vfmaq_f32(a3, vld1q_f32(q + d + 12), k3);
    }
    scores[j] = hsum(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) * scale;
  }
}

// out[0, 16 S) = sum_j p[j] * v[j][0, 16 S): 4 S accumulators, each row's chunk read once, whole.
template <int S, typename T>
void value_rows(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  float32x4_t acc[4 * S];
  for (int c = 0; c < 4 * S; ++c) acc[c] = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kAhead < keys) prefetch_row(v + (j + kAhead) * hd, 16 * S);
    for (int c = 0; c < 2 * S; ++c) {
      float32x4_t lo, hi;
      load8(v + j * hd + 8 * c, lo, hi);
      acc[2 * c] = vfmaq_n_f32(acc[2 * c], lo, p[j]);
      acc[2 * c + 1] = vfmaq_n_f32(acc[2 * c + 1], hi, p[j]);
    }
  }
  for (int c = 0; c < 4 * S; ++c) vst1q_f32(out + 4 * c, acc[c]);
}

// Column chunks of 64, then a 16- to 48-wide rest.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) value_rows<4>(p, v + d, keys, hd, out + d);
  if (hd - d == 16) value_rows<1>(p, v + d, keys, hd, out + d);
  if (hd - d == 32) value_rows<2>(p, v + d, keys, hd, out + d);
  if (hd - d == 48) value_rows<3>(p, v + d, keys, hd, out + d);
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

}  // namespace qwenvl_edge::neon
