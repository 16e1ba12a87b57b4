// The vector type of the AVX-512 path for the loops written once over a vector (kernels/simd/): 16
// float lanes in a zmm register, loads that widen fp16 (vcvtph2ps) and int8 (vpmovsxbd + vcvtdq2ps)
// as they read, FMA, and horizontal sums. In an anonymous namespace: each AVX-512 translation unit
// keeps its own copy (docs/kernels.md 3.3).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

struct Vec {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  // lm_head prefetches each weight line this far ahead in its row (kernels/simd/lm_head.cpp): four
  // 8 KiB streams are more than the hardware prefetcher keeps ahead of here (+7% read rate for the
  // fp16 head with the next rows prefetched, +4% more this way; best of 512-4096, benchmarks/NOTES.md).
  static constexpr int64_t kLmHeadAheadBytes = 1024;

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg broadcast(float x) { return _mm512_set1_ps(x); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static Reg load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static void store(float* p, Reg a) { _mm512_storeu_ps(p, a); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg acc) { return _mm512_fmadd_ps(a, b, acc); }  // a * b + acc
  static float sum(Reg a) { return _mm512_reduce_add_ps(a); }
  // out[0..3] = the sums of a, b, c, d times scale.
  static void store_sums4(float* out, Reg a, Reg b, Reg c, Reg d, float scale) {
    out[0] = _mm512_reduce_add_ps(a) * scale;
    out[1] = _mm512_reduce_add_ps(b) * scale;
    out[2] = _mm512_reduce_add_ps(c) * scale;
    out[3] = _mm512_reduce_add_ps(d) * scale;
  }
};

}  // namespace
}  // namespace qwenvl_edge::QWENVL_ISA_NS
