// lm_head, arm64 NEON. Compiled twice (cpp/CMakeLists.txt): as namespace neon for any Armv8-a, and as
// neondot with SDOT (vdotq_s32, Armv8.2 dotprod) for the int8 x int8 head.
//
// Float heads: 8 weights per step widened to two float32x4 (vcvt_f32_f16 / sxtl + scvtf), four weight
// rows at a time with two accumulators each, so eight independent FMA chains cover the FMA latency.
// int8 head: a 128-group of activations stays in eight registers for four weight rows; each row's
// group sum is an exact int32, so the four sums pairwise-add into one vector (lane k = row r + k) and a
// single float FMA with the group scale advances all four rows, the reference's step done four-wide.
// Leftover rows (fewer than four) run the reference. dim must be a multiple of 128.
#include <arm_neon.h>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/q4_block.h"

#ifndef QWENVL_NEON_NS
#error "compile with -DQWENVL_NEON_NS=neon or neondot"
#endif

namespace qwenvl_edge::QWENVL_NEON_NS {
namespace {

constexpr int kRows = 4;                // weight rows per pass
constexpr int kChunks = kQ4Group / 16;  // int8x16 vectors per 128-group

// The end of the rows handled four at a time; [end, row_end) goes to the reference.
inline int64_t whole_blocks_end(int64_t row_begin, int64_t row_end) {
  return row_begin + (row_end - row_begin) / kRows * kRows;
}

// [s0 s1 s2 s3], s_k = the sum of a[k]'s four lanes.
inline float32x4_t sum4(const float32x4_t a[kRows]) {
  return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}
inline int32x4_t sum4(const int32x4_t a[kRows]) {
  return vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3]));
}

// Eight weights as floats: lo = p[0..3], hi = p[4..7].
inline void widen8(const uint16_t* p, float32x4_t& lo, float32x4_t& hi) {
  const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
  lo = vcvt_f32_f16(vget_low_f16(h));
  hi = vcvt_high_f32_f16(h);
}
inline void widen8(const int8_t* p, float32x4_t& lo, float32x4_t& hi) {
  const int16x8_t s = vmovl_s8(vld1_s8(p));
  lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(s)));
  hi = vcvtq_f32_s32(vmovl_high_s16(s));
}

// y[i][r..r+3] for whole blocks of four rows in [row_begin, row_end); scale may be null (fp16 weights).
template <typename T>
void rows_times_x(const float* x, int64_t m, const T* w, const float* scale, int64_t dim, int64_t rows,
                  int64_t row_begin, int64_t row_end, float* y) {
  for (int64_t r = row_begin; r < row_end; r += kRows)
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * dim;
      float32x4_t lo[kRows], hi[kRows];
      for (int k = 0; k < kRows; ++k) lo[k] = hi[k] = vdupq_n_f32(0.0f);
      for (int64_t d = 0; d < dim; d += 8) {
        const float32x4_t x0 = vld1q_f32(xi + d), x1 = vld1q_f32(xi + d + 4);
        for (int k = 0; k < kRows; ++k) {
          float32x4_t w0, w1;
          widen8(w + (r + k) * dim + d, w0, w1);
          lo[k] = vfmaq_f32(lo[k], w0, x0);
          hi[k] = vfmaq_f32(hi[k], w1, x1);
        }
      }
      for (int k = 0; k < kRows; ++k) lo[k] = vaddq_f32(lo[k], hi[k]);
      float32x4_t out = sum4(lo);
      if (scale) out = vmulq_f32(out, vld1q_f32(scale + r));
      vst1q_f32(y + i * rows + r, out);
    }
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

void lm_head_f16(const float* x, int64_t m, const uint16_t* w, int64_t dim, int64_t rows, int64_t row_begin,
                 int64_t row_end, float* y) {
  const int64_t split = whole_blocks_end(row_begin, row_end);
  rows_times_x(x, m, w, nullptr, dim, rows, row_begin, split, y);
  ref::lm_head_f16(x, m, w, dim, rows, split, row_end, y);
}

void lm_head_i8(const float* x, int64_t m, const int8_t* w, const float* scale, int64_t dim, int64_t rows,
                int64_t row_begin, int64_t row_end, float* y) {
  const int64_t split = whole_blocks_end(row_begin, row_end);
  rows_times_x(x, m, w, scale, dim, rows, row_begin, split, y);
  ref::lm_head_i8(x, m, w, scale, dim, rows, split, row_end, y);
}

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

}  // namespace qwenvl_edge::QWENVL_NEON_NS
