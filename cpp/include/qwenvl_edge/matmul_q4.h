// y[M, N] = x[M, K] @ W + bias for a 4-bit weight W in the Q4Block layout (q4_block.h).
//
// Two paths over the same weights:
//   exact: fp32 activations, fp32 accumulation: the fidelity path (matches a float reference up to
//          summation order);
//   q8:    activations quantized per 128-group to int8 (quantize_q8), int8 x uint4 dot products with
//          int32 accumulation per group, one float epilogue per group: the fast path.
// Each kernel computes the output tiles [tile_begin, tile_end) (16 outputs each), so a thread pool
// can split the work; bias may be null. The functions below take the family's entries of a path's
// kernel table (kernels.h), chosen once per decoder.
#pragma once

#include <cstdint>

#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

// Activations of M rows quantized for the q8 path. Per row and 128-group g: 128 int8 values in
// "even/odd octets" order (for each octet r: x[8r+0,2,4,6] then x[8r+1,3,5,7]), so that one 32-bit
// broadcast feeds the low-nibble (even) or high-nibble (odd) inputs of a GPTQ word; the scale d
// (x ~= d * q) and the sum of the 128 int8 values, for the zero-point term.
struct Q8Acts {
  int8_t* q = nullptr;   // [m][k]
  float* d = nullptr;    // [m][k / 128]
  int32_t* sum = nullptr;  // [m][k / 128]
};

// One ISA path's matmul_q4 variants: activations already in the weight's (sorted) input order, w.perm
// ignored (the functions below gather first).
struct MatmulQ4Kernels {
  void (*quantize_q8)(const float* x, int64_t m, int64_t k, const Q8Acts& out);
  void (*matmul_q4_exact)(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                          int64_t tile_begin, int64_t tile_end);
  void (*matmul_q4_q8)(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                       int64_t tile_begin, int64_t tile_end);
};

// x [m][k] float -> Q8Acts, gathering x through perm (may be null) first. Round to nearest, d = amax/127.
void quantize_q8(const MatmulQ4Kernels& kernels, const float* x, int64_t m, int64_t k, const int32_t* perm,
                 const Q8Acts& out);

void matmul_q4_exact(const MatmulQ4Kernels& kernels, const float* x, int64_t m, const Q4Matrix& w, const float* bias,
                     float* y, int64_t tile_begin, int64_t tile_end);

void matmul_q4_q8(const MatmulQ4Kernels& kernels, const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias,
                  float* y, int64_t tile_begin, int64_t tile_end);

}  // namespace qwenvl_edge
