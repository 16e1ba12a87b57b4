// The decoder's per-element kernels (RMSNorm, rotary, SiLU gate, softmax, fp16 conversion), AVX-512:
// 16 lanes, masked tails, exp by a polynomial (avx512_common.h).
#include <immintrin.h>

#include <cmath>

#include "kernels/x86/avx512_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx512 {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    __m512 ss = _mm512_setzero_ps();
    for (int64_t i = 0; i < dim; i += 16) {
      const __m512 v = _mm512_maskz_loadu_ps(first_lanes(dim - i), xr + i);
      ss = _mm512_fmadd_ps(v, v, ss);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(ss) / static_cast<float>(dim) + eps));
    for (int64_t i = 0; i < dim; i += 16) {
      const __mmask16 m = first_lanes(dim - i);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), inv);
      _mm512_mask_storeu_ps(out + r * dim + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
    }
  }
}

void apply_rope(float* x, int64_t t, int64_t heads, int64_t head_dim, const float* cos, const float* sin,
                int64_t row_stride) {
  const int64_t half = head_dim / 2;
  for (int64_t p = 0; p < t; ++p) {
    const float* c = cos + p * head_dim;
    const float* s = sin + p * head_dim;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + p * row_stride + h * head_dim;
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = first_lanes(half - i);
        const __m512 x1 = _mm512_maskz_loadu_ps(m, v + i), x2 = _mm512_maskz_loadu_ps(m, v + half + i);
        const __m512 y1 = _mm512_fmsub_ps(x1, _mm512_maskz_loadu_ps(m, c + i),
                                          _mm512_mul_ps(x2, _mm512_maskz_loadu_ps(m, s + i)));
        const __m512 y2 = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(m, c + half + i),
                                          _mm512_mul_ps(x1, _mm512_maskz_loadu_ps(m, s + half + i)));
        _mm512_mask_storeu_ps(v + i, m, y1);
        _mm512_mask_storeu_ps(v + half + i, m, y2);
      }
    }
  }
}

void silu_gate(float* a, const float* g, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + i), silu));
  }
}

void softmax(float* s, int64_t n) {
  __m512 top = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = first_lanes(n - j);
    top = _mm512_mask_max_ps(top, m, top, _mm512_maskz_loadu_ps(m, s + j));
  }
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 total = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = first_lanes(n - j);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), max));
    total = _mm512_mask_add_ps(total, m, total, e);
    _mm512_mask_storeu_ps(s + j, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = first_lanes(n - j);
    _mm512_mask_storeu_ps(s + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv));
  }
}

void to_f16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  ref::to_f16(x + i, n - i, out + i);
}

}  // namespace qwenvl_edge::avx512
