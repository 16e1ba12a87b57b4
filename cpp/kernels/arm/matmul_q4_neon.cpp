// matmul_q4, arm64 NEON. Compiled twice (cpp/CMakeLists.txt): as namespace neon with vmull_s8 +
// pairwise adds for the int8 dot products, and as neondot with SDOT (vdotq_s32, Armv8.2 dotprod).
//
// A tile's 16 columns are four uint32x4 registers per octet. As in the x86 variants, the low nibbles
// of a GPTQ word are the even inputs 8r+0,2,4,6 and the high nibbles the odd ones, so one 32-bit
// activation pattern [x0 x2 x4 x6] duplicated over the four lanes feeds four columns at once; the
// nibble values 0..15 are valid signed int8, so signed dot products need no offset.
#include <arm_neon.h>

#include "kernels/path_kernels.h"

#ifndef QWENVL_ISA_NS
#error "compile with -DQWENVL_ISA_NS=neon or neondot"
#endif

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

inline int32x4_t dot4(int32x4_t acc, int8x16_t w, int8x16_t x) {
#if defined(QWENVL_DOTPROD)
  return vdotq_s32(acc, w, x);
#else
  // 16 products (|p| <= 15 * 127), summed in fours: pairs into int32, then adjacent int32 pairs.
  const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));
  const int32x4_t hi = vpaddlq_s16(vmull_high_s8(w, x));
  return vaddq_s32(acc, vpaddq_s32(lo, hi));
#endif
}

inline int8x16_t dup_i32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

inline float32x4_t scales4(const Q4Block& b, int c4) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(b.scale + 4 * c4)));
}

inline uint32x4_t zeros4(const Q4Block& b, int c4) {
  const uint8_t* z = b.zero + 4 * c4;
  const uint32_t v[4] = {z[0], z[1], z[2], z[3]};
  return vld1q_u32(v);
}

void q8_tile(const Q8Acts& x, int64_t row, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const uint32x4_t low4 = vdupq_n_u32(0x0F0F0F0F);
  float32x4_t total[4];
  for (auto& t : total) t = vdupq_n_f32(0.0f);
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    int32x4_t acc[4];
    for (auto& a : acc) a = vdupq_n_s32(0);
    const int8_t* q = x.q + row * w.k + g * kQ4Group;
    for (int r = 0; r < kQ4Octets; ++r) {
      const int8x16_t xe = dup_i32(q + 8 * r), xo = dup_i32(q + 8 * r + 4);
      for (int c4 = 0; c4 < 4; ++c4) {
        const uint32x4_t word = vld1q_u32(&b.q[r][4 * c4]);
        acc[c4] = dot4(acc[c4], vreinterpretq_s8_u32(vandq_u32(word, low4)), xe);
        acc[c4] = dot4(acc[c4], vreinterpretq_s8_u32(vandq_u32(vshrq_n_u32(word, 4), low4)), xo);
      }
    }
    const int64_t at = row * groups + g;
    const int32x4_t sum = vdupq_n_s32(x.sum[at]);
    for (int c4 = 0; c4 < 4; ++c4) {
      const int32x4_t corrected = vmlsq_s32(acc[c4], vreinterpretq_s32_u32(zeros4(b, c4)), sum);
      const float32x4_t sd = vmulq_n_f32(scales4(b, c4), x.d[at]);
      total[c4] = vfmaq_f32(total[c4], sd, vcvtq_f32_s32(corrected));
    }
  }
  for (int c4 = 0; c4 < 4; ++c4) {
    const int64_t col = tile * kQ4Tile + 4 * c4;
    const float32x4_t add = bias ? vld1q_f32(bias + col) : vdupq_n_f32(0.0f);
    vst1q_f32(y + row * w.n + col, vaddq_f32(total[c4], add));
  }
}

void exact_tile(const float* x, int64_t row, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const uint32x4_t low4 = vdupq_n_u32(0xF);
  float32x4_t total[4];
  for (auto& t : total) t = vdupq_n_f32(0.0f);
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    const float* xg = x + row * w.k + g * kQ4Group;
    for (int c4 = 0; c4 < 4; ++c4) {
      const float32x4_t zero = vcvtq_f32_u32(zeros4(b, c4));
      float32x4_t acc = vdupq_n_f32(0.0f);
      for (int r = 0; r < kQ4Octets; ++r) {
        const uint32x4_t word = vld1q_u32(&b.q[r][4 * c4]);
        for (int j = 0; j < 8; ++j) {
          const uint32x4_t q = vandq_u32(vshlq_u32(word, vdupq_n_s32(-4 * j)), low4);
          acc = vfmaq_n_f32(acc, vsubq_f32(vcvtq_f32_u32(q), zero), xg[8 * r + j]);
        }
      }
      total[c4] = vfmaq_f32(total[c4], scales4(b, c4), acc);
    }
  }
  for (int c4 = 0; c4 < 4; ++c4) {
    const int64_t col = tile * kQ4Tile + 4 * c4;
    const float32x4_t add = bias ? vld1q_f32(bias + col) : vdupq_n_f32(0.0f);
    vst1q_f32(y + row * w.n + col, vaddq_f32(total[c4], add));
  }
}

}  // namespace

// Activation quantization is O(k) per row against O(k * n) for the product: the reference's plain
// loop (compiled for the arm64 baseline, which includes NEON) is used as it is.
void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out) { ref::quantize_q8(x, m, k, out); }

void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = tile_begin; t < tile_end; ++t) q8_tile(x, i, w, bias, y, t);
}

void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = tile_begin; t < tile_end; ++t) exact_tile(x, i, w, bias, y, t);
}

}  // namespace qwenvl_edge::QWENVL_ISA_NS
