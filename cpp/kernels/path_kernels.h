// The kernel functions of each ISA path, declared once per namespace (ref, avx2, avx512, avx512vnni,
// neon, neondot): what the per-ISA files define and kernel_tables.cpp puts into each path's table.
// Private to the core: the model and the bindings reach them only through a table (kernels.h).
//
// The matmul_q4 variants take activations already in the weight's (sorted) input order and ignore
// w.perm: the dispatchers gather, in baseline-compiled code, so that no STL code is ever instantiated
// with wider-ISA flags (a linker could keep that copy for the whole module and fault on older CPUs).
#pragma once

#include <cstdint>

#include "qwenvl_edge/matmul_q4.h"

namespace qwenvl_edge {

#define QWENVL_DECLARE_MATMUL_Q4(ns)                                                                   \
  namespace ns {                                                                                      \
  void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out);                          \
  void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,      \
                       int64_t tile_begin, int64_t tile_end);                                          \
  void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,       \
                    int64_t tile_begin, int64_t tile_end);                                             \
  }
QWENVL_DECLARE_MATMUL_Q4(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_MATMUL_Q4(avx2)
QWENVL_DECLARE_MATMUL_Q4(avx512)
QWENVL_DECLARE_MATMUL_Q4(avx512vnni)
#endif
#if defined(QWENVL_ARM64_KERNELS)
QWENVL_DECLARE_MATMUL_Q4(neon)
QWENVL_DECLARE_MATMUL_Q4(neondot)
#endif
#undef QWENVL_DECLARE_MATMUL_Q4

// lm_head_i8_q8 takes the activations already quantized (xq [m][dim] int8, d [m][dim / 128]).
#define QWENVL_DECLARE_LM_HEAD_Q8(ns)                                                                       \
  namespace ns {                                                                                           \
  void lm_head_i8_q8(const int8_t* xq, const float* d, int64_t m, const int8_t* w, const float* scale,       \
                     int64_t dim, int64_t rows, int64_t row_begin, int64_t row_end, float* y);              \
  }
QWENVL_DECLARE_LM_HEAD_Q8(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_LM_HEAD_Q8(avx512vnni)
#endif
#if defined(QWENVL_ARM64_KERNELS)
QWENVL_DECLARE_LM_HEAD_Q8(neon)
QWENVL_DECLARE_LM_HEAD_Q8(neondot)
#endif
#undef QWENVL_DECLARE_LM_HEAD_Q8

#define QWENVL_DECLARE_LM_HEAD(ns)                                                                          \
  namespace ns {                                                                                           \
  void lm_head_f16(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin, \
                   int64_t row_end, float* y);                                                             \
  void lm_head_i8(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,    \
                  int64_t row_begin, int64_t row_end, float* y);                                           \
  }
QWENVL_DECLARE_LM_HEAD(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_LM_HEAD(avx2)
QWENVL_DECLARE_LM_HEAD(avx512)
#endif
#if defined(QWENVL_ARM64_KERNELS)
QWENVL_DECLARE_LM_HEAD(neon)
#endif
#undef QWENVL_DECLARE_LM_HEAD

#define QWENVL_DECLARE_DECODER_KERNELS(ns)                                                                     \
  namespace ns {                                                                                              \
  /* out[i] = x[i] * rsqrt(mean(x^2) + eps) * w[i], for each of `rows` rows of `dim` */                      \
  void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out);            \
  /* x [t][heads][head_dim] (row stride row_stride) rotated in place: y = x * cos + rotate_half(x) * sin */   \
  void apply_rope(float* x, int64_t t, int64_t heads, int64_t head_dim, const float* cos, const float* sin,   \
                  int64_t row_stride);                                                                       \
  /* a[i] *= silu(g[i]) = g[i] / (1 + exp(-g[i])): Qwen's MLP, with w2's output as the gate */              \
  void silu_gate(float* a, const float* g, int64_t n);                                                       \
  /* s[0..n) = exp(s - max) / sum, in place, float32 */                                                      \
  void softmax(float* s, int64_t n);                                                                         \
  /* fp32 -> fp16, round to nearest even (what F16C does) */                                                 \
  void to_f16(const float* x, int64_t n, uint16_t* out);                                                     \
  /* scores[j] = (q . k[j]) * scale for the keys [0, keys) of one head, hd % 16 == 0 */                      \
  void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores); \
  void attention_scores_f16(const float* q, const uint16_t* k, int64_t keys, int64_t hd, float scale,        \
                            float* scores);                                                                  \
  /* out[0..hd) = sum_j p[j] * v[j] */                                                                       \
  void attention_values(const float* p, const float* v, int64_t keys, int64_t hd, float* out);               \
  void attention_values_f16(const float* p, const uint16_t* v, int64_t keys, int64_t hd, float* out);        \
  }
QWENVL_DECLARE_DECODER_KERNELS(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_DECODER_KERNELS(avx2)
QWENVL_DECLARE_DECODER_KERNELS(avx512)
#endif
#if defined(QWENVL_ARM64_KERNELS)
QWENVL_DECLARE_DECODER_KERNELS(neon)
#endif
#undef QWENVL_DECLARE_DECODER_KERNELS

}  // namespace qwenvl_edge
