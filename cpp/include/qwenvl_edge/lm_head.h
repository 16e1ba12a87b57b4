// The output projection: y[i][r] = x[i] . w[r] for the rows r in [row_begin, row_end) of a
// [rows][dim] weight, stored fp16 (as released) or int8 per row (w[r] ~= scale[r] * q[r], written by
// the exporter: half the bytes per token). Float activations, float accumulation.
#pragma once

#include <cstdint>

namespace qwenvl_edge {

// One ISA path's lm_head variants (the path's kernel table, kernels.h, holds them).
struct LmHeadKernels {
  void (*lm_head_f16)(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin,
                      int64_t row_end, float* y);
  // y[i][r] = scale[r] * (x[i] . w[r])
  void (*lm_head_i8)(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                     int64_t row_begin, int64_t row_end, float* y);
  // The activations already quantized: xq [m][dim] int8, d [m][dim / 128] (lm_head_i8_q8 below).
  void (*lm_head_i8_q8)(const int8_t* xq, const float* d, int64_t m, const int8_t* w, const float* scale,
                        int64_t dim, int64_t rows, int64_t row_begin, int64_t row_end, float* y);
};

// The int8 head with int8 activations too: x quantized per 128-group (round to nearest, d = amax/127,
// natural order), y[i][r] = scale[r] * sum_g d[i][g] * (xq[i][g] . w[r][g]). The fast path's head:
// integer dot products (vpdpbusd on AVX-512 VNNI, SDOT or vmull_s8 on arm64); AVX2 and AVX-512 without
// VNNI run the scalar reference.
void lm_head_i8_q8(const LmHeadKernels& kernels, const float* x, int64_t m, const int8_t* w, const float* scale,
                   int64_t dim, int64_t rows, int64_t row_begin, int64_t row_end, float* y);

}  // namespace qwenvl_edge
