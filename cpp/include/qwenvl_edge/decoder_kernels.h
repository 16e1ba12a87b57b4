// The decoder's small kernel families beside matmul_q4 and lm_head: RMSNorm, rotary embedding
// (rotate-half, with dynamic-NTK base and logn query scaling), KV-cached causal attention, the SiLU
// gate and the fp16 embedding gather. Scalar references; formulas as in spec section 4.
#pragma once

#include <cstdint>

#include "qwenvl_edge/isa.h"

namespace qwenvl_edge {

// out[i] = x[i] * rsqrt(mean(x^2) + eps) * w[i], for each of `rows` rows of `dim`.
void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out);

// cos/sin [t][head_dim] for positions start..start+t-1: theta_i = base'^(-2i/d), base' = base *
// alpha^(d/(d-2)), pairs (i, i + d/2) share theta_i. Float32 like the original.
void rope_tables(int64_t start, int64_t t, int64_t head_dim, double base, double alpha, float* cos, float* sin);

// x [t][heads][head_dim] rotated in place: y = x * cos + rotate_half(x) * sin.
void apply_rope(float* x, int64_t t, int64_t heads, int64_t head_dim, const float* cos, const float* sin,
                int64_t row_stride);

// ln(p + 1) / ln(seq_length) where p + 1 > seq_length, else 1.
float logn_scale(int64_t position, int64_t seq_length);

// Causal attention of t new queries at positions past..past+t-1 for heads [head_begin, head_end).
// q [t][heads*hd] (row stride q_stride), caches [heads][capacity][hd] already holding the new keys,
// out [t][heads*hd]; scratch holds past + t floats. Scores are (q . k) * scale; softmax with the max
// subtracted, in float32. The ISA variants differ only in the q . k dot products (hd % 16 == 0).
void attention(Isa isa, const float* q, int64_t q_stride, const float* k_cache, const float* v_cache,
               int64_t capacity, int64_t past, int64_t t, int64_t heads, int64_t hd, float scale,
               int64_t head_begin, int64_t head_end, float* out, float* scratch);

// The q . k dot products of one query against keys [0, keys): scores[j] = (q . k[j]) * scale.
#define QWENVL_DECLARE_ATTENTION_SCORES(ns) \
  namespace ns {                            \
  void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores); \
  }
QWENVL_DECLARE_ATTENTION_SCORES(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_ATTENTION_SCORES(avx2)
QWENVL_DECLARE_ATTENTION_SCORES(avx512)
#endif
#undef QWENVL_DECLARE_ATTENTION_SCORES

// a[i] *= silu(g[i]) = g[i] / (1 + exp(-g[i])): Qwen's MLP, with w2's output as the gate.
void silu_gate(float* a, const float* g, int64_t n);

// out [t][dim] = the fp16 rows ids[0..t) of table [rows][dim].
void embed_f16(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t t, float* out);

}  // namespace qwenvl_edge
