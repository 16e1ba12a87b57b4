// Helpers for the arm64 NEON decoder kernel files only (static, like avx2_common.h): exp for float32
// lanes and the horizontal reductions.
#pragma once

#include <arm_neon.h>

namespace qwenvl_edge::neon {

// exp(x) for float32 lanes, the same method and constants as avx512::exp_ps: x = n ln2 + r with
// |r| <= ln2/2 (ln2 split in two so n * ln2 is exact enough), e^r by its degree-7 Taylor polynomial,
// times 2^n built in the exponent field (n in [-126, 127] after the clamp to [-87.3, 88]).
static inline float32x4_t exp_ps(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.0f));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));  // vfmsq_f32(a, b, c) = a - b * c
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.0f / 5040);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);  // vfmaq_f32(a, b, c) = a + b * c
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t two_n = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(two_n));
}

// The sum / max of the four lanes.
static inline float hsum(float32x4_t v) { return vaddvq_f32(v); }
static inline float hmax(float32x4_t v) { return vmaxvq_f32(v); }

// [sum a, sum b, sum c, sum d]: four horizontal sums in one vector by two rounds of pairwise adds.
static inline float32x4_t hsum4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d) {
  return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

}  // namespace qwenvl_edge::neon
