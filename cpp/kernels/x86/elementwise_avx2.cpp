// The decoder's per-element kernels (RMSNorm, rotary, SiLU gate, softmax, fp16 conversion), AVX2 +
// FMA + F16C: 8 lanes, the scalar reference for the tails, exp by a polynomial (avx2_common.h).
#include <immintrin.h>

#include <cmath>

#include "kernels/x86/avx2_common.h"

#include "kernels/path_kernels.h"

namespace qwenvl_edge::avx2 {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(xr + i), acc);
    float ss = hsum(acc);
    for (; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= dim; i += 8)
      _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), vinv), _mm256_loadu_ps(w + i)));
    for (; i < dim; ++i) o[i] = xr[i] * inv * w[i];
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
      int64_t i = 0;
      for (; i + 8 <= half; i += 8) {
        const __m256 x1 = _mm256_loadu_ps(v + i), x2 = _mm256_loadu_ps(v + half + i);
        _mm256_storeu_ps(v + i, _mm256_fmsub_ps(x1, _mm256_loadu_ps(c + i), _mm256_mul_ps(x2, _mm256_loadu_ps(s + i))));
        _mm256_storeu_ps(v + half + i, _mm256_fmadd_ps(x2, _mm256_loadu_ps(c + half + i),
                                                       _mm256_mul_ps(x1, _mm256_loadu_ps(s + half + i))));
      }
      for (; i < half; ++i) {
        const float x1 = v[i], x2 = v[half + i];
        v[i] = x1 * c[i] - x2 * s[i];
        v[half + i] = x2 * c[half + i] + x1 * s[half + i];
      }
    }
  }
}

void silu_gate(float* a, const float* g, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
    _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), silu));
  }
  ref::silu_gate(a + i, g + i, n - i);
}

void softmax(float* s, int64_t n) {
  __m256 top8 = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) top8 = _mm256_max_ps(top8, _mm256_loadu_ps(s + j));
  float top = hmax(top8);
  for (; j < n; ++j) top = std::fmax(top, s[j]);
  const __m256 max = _mm256_set1_ps(top);
  __m256 total8 = _mm256_setzero_ps();
  for (j = 0; j + 8 <= n; j += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), max));
    total8 = _mm256_add_ps(total8, e);
    _mm256_storeu_ps(s + j, e);
  }
  float total = hsum(total8);
  for (; j < n; ++j) total += (s[j] = std::exp(s[j] - top));
  const float inv = 1.0f / total;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), vinv));
  for (; j < n; ++j) s[j] *= inv;
}

void to_f16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  ref::to_f16(x + i, n - i, out + i);
}

}  // namespace qwenvl_edge::avx2
