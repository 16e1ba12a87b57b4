// The decoder's small kernel families beside matmul_q4 and lm_head: RMSNorm, rotary embedding
// (rotate-half, with dynamic-NTK base and logn query scaling), KV-cached causal attention over an
// fp32 or fp16 cache, the SiLU gate and the fp16 embedding gather. Formulas as in spec section 4.
//
// The per-element kernels are entries of each ISA path's kernel table (DecoderKernels, part of
// Kernels in kernels.h): the scalar reference in kernels/ref/decoder_kernels_ref.cpp, SIMD variants in
// kernels/x86/ and kernels/arm/ (elementwise_<isa>.cpp) and kernels/simd/attention.cpp (every path).
#pragma once

#include <cstdint>

namespace qwenvl_edge {

// One ISA path's decoder kernels.
struct DecoderKernels {
  // out[i] = x[i] * rsqrt(mean(x^2) + eps) * w[i], for each of `rows` rows of `dim`
  void (*rms_norm)(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out);
  // x [t][heads][head_dim] (row stride row_stride) rotated in place: y = x * cos + rotate_half(x) * sin
  void (*apply_rope)(float* x, int64_t t, int64_t heads, int64_t head_dim, const float* cos, const float* sin,
                     int64_t row_stride);
  // a[i] *= silu(g[i]) = g[i] / (1 + exp(-g[i])): Qwen's MLP, with w2's output as the gate
  void (*silu_gate)(float* a, const float* g, int64_t n);
  // s[0..n) = exp(s - max) / sum, in place, float32
  void (*softmax)(float* s, int64_t n);
  // fp32 -> fp16, round to nearest even (what F16C does)
  void (*to_f16)(const float* x, int64_t n, uint16_t* out);
  // scores[j] = (q . k[j]) * scale for the keys [0, keys) of one head, hd % 16 == 0
  void (*attention_scores)(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores);
  void (*attention_scores_f16)(const float* q, const uint16_t* k, int64_t keys, int64_t hd, float scale,
                               float* scores);
  // out[0..hd) = sum_j p[j] * v[j]
  void (*attention_values)(const float* p, const float* v, int64_t keys, int64_t hd, float* out);
  void (*attention_values_f16)(const float* p, const uint16_t* v, int64_t keys, int64_t hd, float* out);
};

// cos/sin [t][head_dim] for positions start..start+t-1: theta_i = base'^(-2i/d), base' = base *
// alpha^(d/(d-2)), pairs (i, i + d/2) share theta_i. Float32 like the original.
void rope_tables(int64_t start, int64_t t, int64_t head_dim, double base, double alpha, float* cos, float* sin);

// ln(p + 1) / ln(seq_length) where p + 1 > seq_length, else 1.
float logn_scale(int64_t position, int64_t seq_length);

// A layer's KV cache: [heads][capacity][hd] rotated keys and values, fp32 or fp16 elements.
struct KvView {
  const void* k;
  const void* v;
  bool f16;
  int64_t capacity;
};

// Causal attention of t new queries at positions past..past+t-1 for heads [head_begin, head_end).
// q [t][heads*hd] (row stride q_stride), the cache already holding the new keys, out [t][heads*hd];
// scratch holds past + t floats. Scores are (q . k) * scale; softmax with the max subtracted, in
// float32 whatever the cache's element type.
void attention(const DecoderKernels& kernels, const float* q, int64_t q_stride, const KvView& kv, int64_t past,
               int64_t t, int64_t heads, int64_t hd, float scale, int64_t head_begin, int64_t head_end, float* out,
               float* scratch);

// out [t][dim] = the fp16 rows ids[0..t) of table [rows][dim].
void embed_f16(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t t, float* out);

}  // namespace qwenvl_edge
