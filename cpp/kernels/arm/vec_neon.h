// The vector type of the NEON paths for the loops written once over a vector (kernels/simd/): eight
// float lanes as a pair of float32x4 registers (lo = lanes 0-3, hi = 4-7), so that one fp16 load
// (vcvt_f32_f16 / vcvt_high_f32_f16) or int8 load (sxtl + scvtf) of eight fills it, and every FMA is
// two independent chains. In an anonymous namespace, like the `static` helpers of neon_common.h:
// each NEON translation unit keeps its own copy (docs/kernels.md 3.3).
#pragma once

#include <arm_neon.h>

#include <cstdint>


namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

struct Vec {
  struct Reg {
    float32x4_t lo, hi;
  };
  static constexpr int kLanes = 8;
  static constexpr int64_t kLmHeadAheadBytes = 0;  // no software prefetch: measured on AVX-512 only

  static Reg zero() { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
  static Reg broadcast(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static Reg load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static Reg load(const uint16_t* p) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
  }
  static Reg load(const int8_t* p) {
    const int16x8_t s = vmovl_s8(vld1_s8(p));
    return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(s))), vcvtq_f32_s32(vmovl_high_s16(s))};
  }
  static void store(float* p, Reg a) {
    vst1q_f32(p, a.lo);
    vst1q_f32(p + 4, a.hi);
  }
  static Reg add(Reg a, Reg b) { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
  static Reg fma(Reg a, Reg b, Reg acc) { return {vfmaq_f32(acc.lo, a.lo, b.lo), vfmaq_f32(acc.hi, a.hi, b.hi)}; }
  static float sum(Reg a) { return vaddvq_f32(vaddq_f32(a.lo, a.hi)); }
  // out[0..3] = the sums of a, b, c, d times scale: two rounds of pairwise adds, one 4-lane store.
  static void store_sums4(float* out, Reg a, Reg b, Reg c, Reg d, float scale) {
    const float32x4_t ab = vpaddq_f32(vaddq_f32(a.lo, a.hi), vaddq_f32(b.lo, b.hi));
    const float32x4_t cd = vpaddq_f32(vaddq_f32(c.lo, c.hi), vaddq_f32(d.lo, d.hi));
    vst1q_f32(out, vmulq_n_f32(vpaddq_f32(ab, cd), scale));
  }
};

}  // namespace
}  // namespace qwenvl_edge::QWENVL_ISA_NS
