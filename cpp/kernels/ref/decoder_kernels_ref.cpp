// Scalar references of the decoder's small kernels (decoder_kernels.h): the definition every SIMD
// variant is tested against.
#include <cmath>
#include <cstring>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge::ref {
namespace {

// IEEE float -> half, round to nearest even, overflow to inf, NaN kept quiet.
uint16_t fp32_to_fp16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  const uint32_t sign = (b >> 16) & 0x8000, abs = b & 0x7fffffff;
  if (abs >= 0x7f800000) return static_cast<uint16_t>(sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0));
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // >= 65520 rounds to inf
  if (abs < 0x38800000) {  // below 2^-14: a subnormal half, in units of 2^-24 (the scaling is exact)
    float a;
    std::memcpy(&a, &abs, sizeof a);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);  // ties to the even 10-bit mantissa
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000) >> 13));  // rebias 127 -> 15
}

}  // namespace

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float ss = 0.0f;
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = xr[i] * inv * w[i];
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
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[half + i];
        v[i] = x1 * c[i] - x2 * s[i];
        v[half + i] = x2 * c[half + i] + x1 * s[half + i];
      }
    }
  }
}

void silu_gate(float* a, const float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] *= g[i] / (1.0f + std::exp(-g[i]));
}

void softmax(float* s, int64_t n) {
  float top = -INFINITY;
  for (int64_t j = 0; j < n; ++j) top = std::fmax(top, s[j]);
  float total = 0.0f;
  for (int64_t j = 0; j < n; ++j) total += (s[j] = std::exp(s[j] - top));
  const float inv = 1.0f / total;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

void to_f16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < keys; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += q[d] * k[j * hd + d];
    scores[j] = dot * scale;
  }
}

void attention_scores_f16(const float* q, const uint16_t* k, int64_t keys, int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < keys; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += q[d] * fp16_to_fp32(k[j * hd + d]);
    scores[j] = dot * scale;
  }
}

void attention_values(const float* p, const float* v, int64_t keys, int64_t hd, float* out) {
  for (int64_t d = 0; d < hd; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t d = 0; d < hd; ++d) out[d] += p[j] * v[j * hd + d];
}

void attention_values_f16(const float* p, const uint16_t* v, int64_t keys, int64_t hd, float* out) {
  for (int64_t d = 0; d < hd; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t d = 0; d < hd; ++d) out[d] += p[j] * fp16_to_fp32(v[j * hd + d]);
}

}  // namespace qwenvl_edge::ref
