// lm_head_i8_q8, arm64 NEON. Compiled twice (cpp/CMakeLists.txt): as namespace neon for any Armv8-a,
// with vmull_s8 + pairwise adds, and as neondot with SDOT (vdotq_s32, Armv8.2 dotprod). The float heads
// are the shared loop of kernels/simd/lm_head.cpp.
//
// A 128-group of activations stays in eight registers for four weight rows; each row's
// group sum is an exact int32, so the four sums pairwise-add into one vector (lane k = row r + k) and a
// single float FMA with the group scale advances all four rows, the reference's step done four-wide.
// Leftover rows (fewer than four) run the reference. dim must be a multiple of 128.
#include <arm_neon.h>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

#ifndef QWENVL_ISA_NS
#error "compile with -DQWENVL_ISA_NS=neon or neondot"
#endif

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

constexpr int kRows = 4;                // weight rows per pass
constexpr int kChunks = kQ4Group / 16;  // int8x16 vectors per 128-group

// The end of the rows handled four at a time; [end, row_end) goes to the reference.
inline int64_t whole_blocks_end(int64_t row_begin, int64_t row_end) {
  return row_begin + (row_end - row_begin) / kRows * kRows;
}

// [s0 s1 s2 s3], s_k = the sum of a[k]'s four lanes.
inline int32x4_t sum4(const int32x4_t a[kRows]) {
  return vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3]));
}

inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
#if defined(QWENVL_DOTPROD)
  return vdotq_s32(acc, w, x);
#else
  // Each product fits int16 (|w * x| <= 128 * 127); pairs of them are added into the int32 lanes.
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w), vget_low_s8(x)));
  return vpadalq_s16(acc, vmull_high_s8(w, x));
#endif
}

}  // namespace

void lm_head_i8_q8(const int8_t* xq, const float* d, int64_t m, const int8_t* w, const float* scale, int64_t dim,
                   int64_t rows, int64_t row_begin, int64_t row_end, float* y) {
  const int64_t groups = dim / kQ4Group;
  const int64_t split = whole_blocks_end(row_begin, row_end);
  for (int64_t r = row_begin; r < split; r += kRows)
    for (int64_t i = 0; i < m; ++i) {
      float32x4_t total = vdupq_n_f32(0.0f);  // lane k: row r + k
      for (int64_t g = 0; g < groups; ++g) {
        const int8_t* xg = xq + i * dim + g * kQ4Group;
        int8x16_t xv[kChunks];
        for (int c = 0; c < kChunks; ++c) xv[c] = vld1q_s8(xg + 16 * c);
        int32x4_t acc[kRows];
        for (int k = 0; k < kRows; ++k) {
          const int8_t* wg = w + (r + k) * dim + g * kQ4Group;
          int32x4_t even = vdupq_n_s32(0), odd = even;
          for (int c = 0; c < kChunks; c += 2) {
            even = dot16(even, vld1q_s8(wg + 16 * c), xv[c]);
            odd = dot16(odd, vld1q_s8(wg + 16 * c + 16), xv[c + 1]);
          }
          acc[k] = vaddq_s32(even, odd);
        }
        total = vfmaq_n_f32(total, vcvtq_f32_s32(sum4(acc)), d[i * groups + g]);
      }
      vst1q_f32(y + i * rows + r, vmulq_f32(total, vld1q_f32(scale + r)));
    }
  ref::lm_head_i8_q8(xq, d, m, w, scale, dim, rows, split, row_end, y);
}

}  // namespace qwenvl_edge::QWENVL_ISA_NS
