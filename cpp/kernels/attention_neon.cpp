// Attention's inner loops, arm64 NEON. fp16 caches are widened with vcvt_f32_f16 as they load (base
// Armv8-a AdvSIMD); hd % 16 == 0. Compiled once, for both the neon and neondot paths.
//
// Scores: four keys at a time with two FMA chains each (eight chains cover the FMA latency); the
// four dot products are reduced into one vector by pairwise adds, scaled and stored together.
// Values: one 16-wide column strip (four registers) at a time over all keys, two keys per step.
#include <arm_neon.h>

#include "neon_common.h"

#include "qwenvl_edge/decoder_kernels.h"

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

template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
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

template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  for (int64_t d = 0; d < hd; d += 16) {
    float32x4_t a[4], b[4];  // a: even keys, b: odd keys; lanes d..d+15
    for (int c = 0; c < 4; ++c) a[c] = b[c] = vdupq_n_f32(0.0f);
    int64_t j = 0;
    for (; j + 2 <= keys; j += 2) {
      float32x4_t v0[4], v1[4];
      load8(v + j * hd + d, v0[0], v0[1]);
      load8(v + j * hd + d + 8, v0[2], v0[3]);
      load8(v + (j + 1) * hd + d, v1[0], v1[1]);
      load8(v + (j + 1) * hd + d + 8, v1[2], v1[3]);
      for (int c = 0; c < 4; ++c) {
        a[c] = vfmaq_n_f32(a[c], v0[c], p[j]);
        b[c] = vfmaq_n_f32(b[c], v1[c], p[j + 1]);
      }
    }
    if (j < keys) {
      float32x4_t v0[4];
      load8(v + j * hd + d, v0[0], v0[1]);
      load8(v + j * hd + d + 8, v0[2], v0[3]);
      for (int c = 0; c < 4; ++c) a[c] = vfmaq_n_f32(a[c], v0[c], p[j]);
    }
    for (int c = 0; c < 4; ++c) vst1q_f32(out + d + 4 * c, vaddq_f32(a[c], b[c]));
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

}  // namespace qwenvl_edge::neon
