// Helpers for the AVX2 kernel files only. `static`, so each AVX2 translation unit keeps its own copy
// and no AVX2-compiled function can be merged into code that runs on other ISA paths.
#pragma once

#include <immintrin.h>

namespace qwenvl_edge::avx2 {

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

}  // namespace qwenvl_edge::avx2
