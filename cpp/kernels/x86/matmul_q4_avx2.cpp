// matmul_q4, AVX2 + FMA + F16C. A tile's 16 columns are two ymm halves (columns 0-7, 8-15); the
// nibble and broadcast scheme is the AVX-512 one (matmul_q4_avx512.cpp) at half width, with the int8
// dot products done by vpmaddubsw + vpmaddwd. With 16 ymm registers, rows go two at a time.
#include <immintrin.h>

#include "kernels/path_kernels.h"
#include "kernels/q4_prefetch.h"

namespace qwenvl_edge::avx2 {
namespace {

// vpmaddubsw adds two products of a weight nibble (0..15) and an activation (-127..127): |pair| <= 3810.
// kWidenEvery octets give 2 * kWidenEvery pairs per int16 lane, |sum| <= 30480 < 32767, so pairs add up
// in int16 (vpaddw) and are widened to int32 (vpmaddwd by ones) once per kWidenEvery octets instead of
// after every product: a quarter fewer instructions in the inner loop, which is what bounds the decode
// on cores with 128-bit AVX2 units (two uops per ymm op).
constexpr int kWidenEvery = 4;
static_assert(kQ4Octets % kWidenEvery == 0 && 2 * kWidenEvery * 2 * 15 * 127 <= 32767);

inline __m256i add_pairs(__m256i acc16, __m256i w_u8, __m256i x_s8) {
  return _mm256_add_epi16(acc16, _mm256_maddubs_epi16(w_u8, x_s8));
}

inline __m256i widen_add(__m256i acc32, __m256i acc16) {
  return _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, _mm256_set1_epi16(1)));
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline __m256i load8(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

template <int MR>
void q8_rows(const Q8Acts& x, int64_t row0, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const __m256i low4 = _mm256_set1_epi32(0x0F0F0F0F);
  __m256 total[MR][2];
  for (int i = 0; i < MR; ++i) total[i][0] = total[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    _mm_prefetch(reinterpret_cast<const char*>(&b) + 2048, _MM_HINT_T0);
    __m256i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int r0 = 0; r0 < kQ4Octets; r0 += kWidenEvery) {
      __m256i pairs[MR][2];
      for (int i = 0; i < MR; ++i) pairs[i][0] = pairs[i][1] = _mm256_setzero_si256();
      for (int r = r0; r < r0 + kWidenEvery; ++r) {
        for (int h = 0; h < 2; ++h) {
          const __m256i word = load8(&b.q[r][8 * h]);
          const __m256i even = _mm256_and_si256(word, low4);
          const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(word, 4), low4);
          for (int i = 0; i < MR; ++i) {
            const int8_t* q = x.q + (row0 + i) * w.k + g * kQ4Group + 8 * r;
            pairs[i][h] = add_pairs(pairs[i][h], even, _mm256_set1_epi32(load_i32(q)));
            pairs[i][h] = add_pairs(pairs[i][h], odd, _mm256_set1_epi32(load_i32(q + 4)));
          }
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int h = 0; h < 2; ++h) acc[i][h] = widen_add(acc[i][h], pairs[i][h]);
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i zero = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.zero + 8 * h)));
      const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scale + 8 * h)));
      for (int i = 0; i < MR; ++i) {
        const int64_t at = (row0 + i) * groups + g;
        const __m256i corrected = _mm256_sub_epi32(acc[i][h], _mm256_mullo_epi32(zero, _mm256_set1_epi32(x.sum[at])));
        const __m256 sd = _mm256_mul_ps(scale, _mm256_set1_ps(x.d[at]));
        total[i][h] = _mm256_fmadd_ps(sd, _mm256_cvtepi32_ps(corrected), total[i][h]);
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    const __m256 add = bias ? _mm256_loadu_ps(bias + tile * kQ4Tile + 8 * h) : _mm256_setzero_ps();
    for (int i = 0; i < MR; ++i)
      _mm256_storeu_ps(y + (row0 + i) * w.n + tile * kQ4Tile + 8 * h, _mm256_add_ps(total[i][h], add));
  }
}

// One row against NT tiles at once (decode): more weight streams in flight, shared broadcasts (see
// q8_tiles in matmul_q4_avx512.cpp). NT = 2 keeps the accumulators within 16 ymm registers.
template <int NT>
void q8_tiles(const Q8Acts& x, int64_t row, const Q4Matrix& w, const float* bias, float* y, int64_t tile0) {
  const int64_t groups = w.groups();
  const __m256i low4 = _mm256_set1_epi32(0x0F0F0F0F);
  __m256 total[NT][2];
  for (int t = 0; t < NT; ++t) total[t][0] = total[t][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block* b[NT];
    __m256i acc[NT][2];
    for (int t = 0; t < NT; ++t) {
      b[t] = &w.block(tile0 + t, g);
      acc[t][0] = acc[t][1] = _mm256_setzero_si256();
    }
    const int8_t* q = x.q + row * w.k + g * kQ4Group;
    for (int r0 = 0; r0 < kQ4Octets; r0 += kWidenEvery) {
      __m256i pairs[NT][2];
      for (int t = 0; t < NT; ++t) pairs[t][0] = pairs[t][1] = _mm256_setzero_si256();
      for (int r = r0; r < r0 + kWidenEvery; ++r) {
        const __m256i xe = _mm256_set1_epi32(load_i32(q + 8 * r));
        const __m256i xo = _mm256_set1_epi32(load_i32(q + 8 * r + 4));
        for (int t = 0; t < NT; ++t) {
          prefetch_block_slice(b[t] + kQ4PrefetchBlocks, r);
          for (int h = 0; h < 2; ++h) {
            const __m256i word = load8(&b[t]->q[r][8 * h]);
            pairs[t][h] = add_pairs(pairs[t][h], _mm256_and_si256(word, low4), xe);
            pairs[t][h] = add_pairs(pairs[t][h], _mm256_and_si256(_mm256_srli_epi32(word, 4), low4), xo);
          }
        }
      }
      for (int t = 0; t < NT; ++t)
        for (int h = 0; h < 2; ++h) acc[t][h] = widen_add(acc[t][h], pairs[t][h]);
    }
    const int64_t at = row * groups + g;
    const __m256i sum = _mm256_set1_epi32(x.sum[at]);
    const __m256 d = _mm256_set1_ps(x.d[at]);
    for (int t = 0; t < NT; ++t)
      for (int h = 0; h < 2; ++h) {
        const __m256i zero = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[t]->zero + 8 * h)));
        const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[t]->scale + 8 * h)));
        const __m256i corrected = _mm256_sub_epi32(acc[t][h], _mm256_mullo_epi32(zero, sum));
        total[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(scale, d), _mm256_cvtepi32_ps(corrected), total[t][h]);
      }
  }
  for (int t = 0; t < NT; ++t)
    for (int h = 0; h < 2; ++h) {
      const int64_t col = (tile0 + t) * kQ4Tile + 8 * h;
      const __m256 add = bias ? _mm256_loadu_ps(bias + col) : _mm256_setzero_ps();
      _mm256_storeu_ps(y + row * w.n + col, _mm256_add_ps(total[t][h], add));
    }
}

template <int MR>
void exact_rows(const float* x, int64_t row0, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const __m256i low4 = _mm256_set1_epi32(0xF);
  __m256 total[MR][2];
  for (int i = 0; i < MR; ++i) total[i][0] = total[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    for (int h = 0; h < 2; ++h) {
      const __m256 zero =
          _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.zero + 8 * h))));
      __m256 acc[MR];
      for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
      for (int r = 0; r < kQ4Octets; ++r) {
        const __m256i word = load8(&b.q[r][8 * h]);
        for (int j = 0; j < 8; ++j) {
          const __m256i q = _mm256_and_si256(_mm256_srli_epi32(word, 4 * j), low4);
          const __m256 wq = _mm256_sub_ps(_mm256_cvtepi32_ps(q), zero);
          for (int i = 0; i < MR; ++i)
            acc[i] = _mm256_fmadd_ps(wq, _mm256_set1_ps(x[(row0 + i) * w.k + g * kQ4Group + 8 * r + j]), acc[i]);
        }
      }
      const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scale + 8 * h)));
      for (int i = 0; i < MR; ++i) total[i][h] = _mm256_fmadd_ps(scale, acc[i], total[i][h]);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const __m256 add = bias ? _mm256_loadu_ps(bias + tile * kQ4Tile + 8 * h) : _mm256_setzero_ps();
    for (int i = 0; i < MR; ++i)
      _mm256_storeu_ps(y + (row0 + i) * w.n + tile * kQ4Tile + 8 * h, _mm256_add_ps(total[i][h], add));
  }
}

float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out) {
  const int64_t groups = k / kQ4Group;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i even_odd = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = x + i * k + g * kQ4Group;
      __m256 amax = _mm256_setzero_ps();
      for (int t = 0; t < kQ4Group; t += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(xg + t)));
      const float d = hmax(amax) / 127.0f;
      const __m256 inv = _mm256_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
      int8_t* q = out.q + i * k + g * kQ4Group;
      __m256i sum = _mm256_setzero_si256();
      for (int t = 0; t < kQ4Group; t += 8) {  // one octet
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + t), inv));  // round half even
        sum = _mm256_add_epi32(sum, v);
        v = _mm256_permutevar8x32_epi32(v, even_odd);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(q + t), _mm_packs_epi16(w16, w16));
      }
      out.d[i * groups + g] = d;
      out.sum[i * groups + g] = hsum(sum);
    }
  }
}

void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end) {
  if (m < 2) {  // decode: block over tiles instead of rows
    int64_t t = tile_begin;
    for (; t + 2 <= tile_end; t += 2) q8_tiles<2>(x, 0, w, bias, y, t);
    for (; t < tile_end; ++t) q8_tiles<1>(x, 0, w, bias, y, t);
    return;
  }
  int64_t i = 0;
  for (; i + 2 <= m; i += 2)
    for (int64_t t = tile_begin; t < tile_end; ++t) q8_rows<2>(x, i, w, bias, y, t);
  for (; i < m; ++i)
    for (int64_t t = tile_begin; t < tile_end; ++t) q8_rows<1>(x, i, w, bias, y, t);
}

void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end) {
  int64_t i = 0;
  for (; i + 2 <= m; i += 2)
    for (int64_t t = tile_begin; t < tile_end; ++t) exact_rows<2>(x, i, w, bias, y, t);
  for (; i < m; ++i)
    for (int64_t t = tile_begin; t < tile_end; ++t) exact_rows<1>(x, i, w, bias, y, t);
}

}  // namespace qwenvl_edge::avx2
