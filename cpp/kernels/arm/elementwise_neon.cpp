// The decoder's per-element kernels (RMSNorm, rotary, SiLU gate, softmax, fp16 conversion), arm64
// NEON: 4 lanes, the scalar reference for the tails, exp by a polynomial (neon_common.h). Compiled once
// for base Armv8-a and used by both the neon and neondot paths: dotprod adds nothing to float work.
#include <arm_neon.h>

#include <cmath>

#include "kernels/arm/neon_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::neon {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    // four FMA chains so the sum of squares is not bound by the FMA latency
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16) {
      const float32x4_t v0 = vld1q_f32(xr + i), v1 = vld1q_f32(xr + i + 4);
      const float32x4_t v2 = vld1q_f32(xr + i + 8), v3 = vld1q_f32(xr + i + 12);
      a0 = vfmaq_f32(a0, v0, v0);
      a1 = vfmaq_f32(a1, v1, v1);
      a2 = vfmaq_f32(a2, v2, v2);
      a3 = vfmaq_f32(a3, v3, v3);
    }
    for (; i + 4 <= dim; i += 4) {
      const float32x4_t v = vld1q_f32(xr + i);
      a0 = vfmaq_f32(a0, v, v);
    }
    float ss = hsum(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (i = 0; i + 4 <= dim; i += 4)
      vst1q_f32(o + i, vmulq_f32(vmulq_n_f32(vld1q_f32(xr + i), inv), vld1q_f32(w + i)));
    for (; i < dim; ++i) o[i] = xr[i] * inv * w[i];
  }
}

void apply_rope(float* x, int64_t t, int64_t heads, int64_t head_dim, const float* cos, const float* sin,
                int64_t row_stride) {
  const int64_t half = head_dim / 2;
  for (int64_t p = 0; p < t; ++p) {
    const float* c = cos + p * head_dim;
    const float* s = sin + p * head_dim;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + p * row_stride + h * head_dim;
      int64_t i = 0;
      for (; i + 4 <= half; i += 4) {
        const float32x4_t x1 = vld1q_f32(v + i), x2 = vld1q_f32(v + half + i);
        vst1q_f32(v + i, vfmsq_f32(vmulq_f32(x1, vld1q_f32(c + i)), x2, vld1q_f32(s + i)));
        vst1q_f32(v + half + i, vfmaq_f32(vmulq_f32(x2, vld1q_f32(c + half + i)), x1, vld1q_f32(s + half + i)));
      }
      for (; i < half; ++i) {
        const float x1 = v[i], x2 = v[half + i];
        v[i] = x1 * c[i] - x2 * s[i];
        v[half + i] = x2 * c[half + i] + x1 * s[half + i];
      }
    }
  }
}

void silu_gate(float* a, const float* g, int64_t n) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t gv = vld1q_f32(g + i);
    const float32x4_t silu = vdivq_f32(gv, vaddq_f32(one, exp_ps(vnegq_f32(gv))));
    vst1q_f32(a + i, vmulq_f32(vld1q_f32(a + i), silu));
  }
  ref::silu_gate(a + i, g + i, n - i);
}

// The tails stay inline (not ref::softmax): the max and the sum run over the whole row.
void softmax(float* s, int64_t n) {
  float32x4_t top4 = vdupq_n_f32(-INFINITY);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) top4 = vmaxq_f32(top4, vld1q_f32(s + j));
  float top = hmax(top4);
  for (; j < n; ++j) top = std::fmax(top, s[j]);
  const float32x4_t max = vdupq_n_f32(top);
  float32x4_t total4 = vdupq_n_f32(0.0f);
  for (j = 0; j + 4 <= n; j += 4) {
    const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(s + j), max));
    total4 = vaddq_f32(total4, e);
    vst1q_f32(s + j, e);
  }
  float total = hsum(total4);
  for (; j < n; ++j) total += (s[j] = std::exp(s[j] - top));
  const float inv = 1.0f / total;
  for (j = 0; j + 4 <= n; j += 4) vst1q_f32(s + j, vmulq_n_f32(vld1q_f32(s + j), inv));
  for (; j < n; ++j) s[j] *= inv;
}

// fcvtn rounds in the FPCR's mode: to nearest even, the mode Linux starts every thread in. Like F16C
// it keeps a NaN's top payload bits where the reference drops them; a NaN still maps to a NaN.
void to_f16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
    vst1q_u16(out + i, vreinterpretq_u16_f16(h));
  }
  ref::to_f16(x + i, n - i, out + i);
}

}  // namespace qwenvl_edge::neon
