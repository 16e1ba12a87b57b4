// matmul_q4, scalar reference: the formulas of matmul_q4.h written out plainly. Every SIMD variant is
// tested against this file and against numpy.
//
//   exact: y[i, n] = sum_g s[g, n] * sum_{k in g} x[i, k] * (q[k, n] - z[g, n])
//   q8:    y[i, n] = sum_g s[g, n] * d[i, g] * (sum_{k in g} qx[i, k] * q[k, n] - z[g, n] * sum_k qx[i, k])
#include <cmath>

#include "kernels/path_kernels.h"

namespace qwenvl_edge::ref {
namespace {

int nibble(uint32_t word, int j) { return static_cast<int>((word >> (4 * j)) & 0xF); }

}  // namespace

void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out) {
  const int64_t groups = k / kQ4Group;
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = row + g * kQ4Group;
      float amax = 0.0f;
      for (int t = 0; t < kQ4Group; ++t) amax = std::fmax(amax, std::fabs(xg[t]));
      const float d = amax / 127.0f;
      const float inv = d > 0.0f ? 1.0f / d : 0.0f;
      int8_t* q = out.q + i * k + g * kQ4Group;
      int32_t sum = 0;
      for (int r = 0; r < kQ4Octets; ++r) {
        for (int j = 0; j < 4; ++j) {
          // nearbyint: round half to even, like the SIMD conversions in the default MXCSR mode
          q[8 * r + j] = static_cast<int8_t>(std::nearbyint(xg[8 * r + 2 * j] * inv));
          q[8 * r + 4 + j] = static_cast<int8_t>(std::nearbyint(xg[8 * r + 2 * j + 1] * inv));
        }
      }
      for (int t = 0; t < kQ4Group; ++t) sum += q[t];
      out.d[i * groups + g] = d;
      out.sum[i * groups + g] = sum;
    }
  }
}

void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * w.k;
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      for (int c = 0; c < kQ4Tile; ++c) {
        float total = 0.0f;
        for (int64_t g = 0; g < w.groups(); ++g) {
          const Q4Block& b = w.block(t, g);
          const float* xg = row + g * kQ4Group;
          const int z = b.zero[c];
          float acc = 0.0f;
          for (int r = 0; r < kQ4Octets; ++r)
            for (int j = 0; j < 8; ++j) acc += xg[8 * r + j] * static_cast<float>(nibble(b.q[r][c], j) - z);
          total += fp16_to_fp32(b.scale[c]) * acc;
        }
        const int64_t n = t * kQ4Tile + c;
        y[i * w.n + n] = total + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end) {
  const int64_t groups = w.groups();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      for (int c = 0; c < kQ4Tile; ++c) {
        float total = 0.0f;
        for (int64_t g = 0; g < groups; ++g) {
          const Q4Block& b = w.block(t, g);
          const int8_t* q = x.q + i * w.k + g * kQ4Group;
          int32_t acc = 0;
          for (int r = 0; r < kQ4Octets; ++r)
            for (int j = 0; j < 4; ++j)  // even inputs in the low nibbles, odd in the high
              acc += q[8 * r + j] * nibble(b.q[r][c], 2 * j) + q[8 * r + 4 + j] * nibble(b.q[r][c], 2 * j + 1);
          acc -= b.zero[c] * x.sum[i * groups + g];
          total += fp16_to_fp32(b.scale[c]) * x.d[i * groups + g] * static_cast<float>(acc);
        }
        const int64_t n = t * kQ4Tile + c;
        y[i * w.n + n] = total + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

}  // namespace qwenvl_edge::ref
