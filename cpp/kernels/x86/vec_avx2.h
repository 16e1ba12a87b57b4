// The vector type of the AVX2 path for the loops written once over a vector (kernels/simd/): eight
// float lanes in a ymm register, loads that widen fp16 (vcvtph2ps) and int8 (vpmovsxbd + vcvtdq2ps)
// as they read, FMA, and horizontal sums. In an anonymous namespace, like the `static` helpers of
// avx2_common.h: each AVX2 translation unit keeps its own copy (docs/kernels.md 3.3).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/x86/avx2_common.h"

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

struct Vec {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static constexpr int64_t kLmHeadAheadBytes = 0;  // no software prefetch: measured on AVX-512 only

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg broadcast(float x) { return _mm256_set1_ps(x); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static Reg load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static void store(float* p, Reg a) { _mm256_storeu_ps(p, a); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg acc) { return _mm256_fmadd_ps(a, b, acc); }  // a * b + acc
  static float sum(Reg a) { return hsum(a); }
  // out[0..3] = the sums of a, b, c, d times scale: horizontal adds, one 4-lane store.
  static void store_sums4(float* out, Reg a, Reg b, Reg c, Reg d, float scale) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
    _mm_storeu_ps(out, _mm_mul_ps(sums, _mm_set1_ps(scale)));
  }
};

}  // namespace
}  // namespace qwenvl_edge::QWENVL_ISA_NS
