// Scalar references of the decoder's small kernels (decoder_kernels.h).
#include <cmath>

#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float ss = 0.0f;
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = xr[i] * inv * w[i];
  }
}

void rope_tables(int64_t start, int64_t t, int64_t head_dim, double base, double alpha, float* cos, float* sin) {
  const int64_t half = head_dim / 2;
  const float b = static_cast<float>(base * std::pow(alpha, static_cast<double>(head_dim) / (head_dim - 2)));
  for (int64_t i = 0; i < half; ++i) {
    // float32 like torch: inv_freq = 1 / base ** (arange(0, d, 2) / d), freqs = position * inv_freq
    const float inv_freq = 1.0f / std::pow(b, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    for (int64_t p = 0; p < t; ++p) {
      const float angle = static_cast<float>(start + p) * inv_freq;
      cos[p * head_dim + i] = cos[p * head_dim + half + i] = std::cos(angle);
      sin[p * head_dim + i] = sin[p * head_dim + half + i] = std::sin(angle);
    }
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

float logn_scale(int64_t position, int64_t seq_length) {
  if (position + 1 <= seq_length) return 1.0f;
  return static_cast<float>(std::log(static_cast<double>(position + 1)) / std::log(static_cast<double>(seq_length)));
}

namespace ref {

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < keys; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += q[d] * k[j * hd + d];
    scores[j] = dot * scale;
  }
}

}  // namespace ref

void attention(Isa isa, const float* q, int64_t q_stride, const float* k_cache, const float* v_cache,
               int64_t capacity, int64_t past, int64_t t, int64_t heads, int64_t hd, float scale,
               int64_t head_begin, int64_t head_end, float* out, float* scratch) {
  auto scores = ref::attention_scores;
#if defined(QWENVL_X86_KERNELS)
  if (isa == Isa::kAvx2) scores = avx2::attention_scores;
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni) scores = avx512::attention_scores;
#else
  (void)isa;
#endif
  for (int64_t h = head_begin; h < head_end; ++h) {
    const float* kh = k_cache + h * capacity * hd;
    const float* vh = v_cache + h * capacity * hd;
    for (int64_t i = 0; i < t; ++i) {
      const int64_t keys = past + i + 1;  // causal: up to and including its own position
      scores(q + i * q_stride + h * hd, kh, keys, hd, scale, scratch);
      float top = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) top = std::fmax(top, scratch[j]);
      float total = 0.0f;
      for (int64_t j = 0; j < keys; ++j) total += (scratch[j] = std::exp(scratch[j] - top));
      float* o = out + (i * heads + h) * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < keys; ++j) {
        const float p = scratch[j] / total;
        for (int64_t d = 0; d < hd; ++d) o[d] += p * vh[j * hd + d];  // an axpy: vectorizes as written
      }
    }
  }
}

void silu_gate(float* a, const float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] *= g[i] / (1.0f + std::exp(-g[i]));
}

void embed_f16(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t t, float* out) {
  for (int64_t p = 0; p < t; ++p)
    for (int64_t i = 0; i < dim; ++i) out[p * dim + i] = fp16_to_fp32(table[int64_t(ids[p]) * dim + i]);
}

}  // namespace qwenvl_edge
