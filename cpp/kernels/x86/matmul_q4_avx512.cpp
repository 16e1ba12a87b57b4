// matmul_q4, AVX-512. Compiled twice (see cpp/CMakeLists.txt): as namespace avx512 with
// vpmaddubsw + vpmaddwd for the int8 dot products, and as avx512vnni with vpdpbusd.
//
// One zmm holds the 16 columns of a tile. The GPTQ word of octet r for the 16 columns is one 64-byte
// load; its low nibbles (AND 0x0F0F0F0F) are the even inputs 8r+0,2,4,6 and its high nibbles the odd
// ones, so one broadcast dword of activations [x0 x2 x4 x6] or [x1 x3 x5 x7] feeds all 16 columns.
// Rows are processed MR at a time so that each weight load serves MR rows (prefill); decode is MR = 1.
//
// Variants: q8 (int8 activations, int32 per group, float epilogue s*d*(acc - z*sum));
//           exact (fp32 activations, nibble -> float, minus the zero, FMA; float epilogue * s).
#include <immintrin.h>

#include "kernels/path_kernels.h"
#include "kernels/q4_prefetch.h"

#ifndef QWENVL_ISA_NS
#error "compile with -DQWENVL_ISA_NS=avx512 or avx512vnni"
#endif

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

inline __m512i dot_u8s8(__m512i acc, __m512i w_u8, __m512i x_s8) {
#if defined(QWENVL_VNNI)
  return _mm512_dpbusd_epi32(acc, w_u8, x_s8);
#else
  // u8 * s8 pairs summed into s16 (cannot saturate: 2 * 15 * 127 < 32767), then pairs into s32.
  const __m512i pairs = _mm512_maddubs_epi16(w_u8, x_s8);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
#endif
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <int MR>
void q8_rows(const Q8Acts& x, int64_t row0, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const __m512i low4 = _mm512_set1_epi32(0x0F0F0F0F);
  __m512 total[MR];
  for (int i = 0; i < MR; ++i) total[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    _mm_prefetch(reinterpret_cast<const char*>(&b) + 2048, _MM_HINT_T0);
    __m512i acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_si512();
    for (int r = 0; r < kQ4Octets; ++r) {
      const __m512i word = _mm512_loadu_si512(b.q[r]);
      const __m512i even = _mm512_and_si512(word, low4);
      const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(word, 4), low4);
      for (int i = 0; i < MR; ++i) {
        const int8_t* q = x.q + (row0 + i) * w.k + g * kQ4Group + 8 * r;
        acc[i] = dot_u8s8(acc[i], even, _mm512_set1_epi32(load_i32(q)));
        acc[i] = dot_u8s8(acc[i], odd, _mm512_set1_epi32(load_i32(q + 4)));
      }
    }
    const __m512i zero = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.zero)));
    const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.scale)));
    for (int i = 0; i < MR; ++i) {
      const int64_t at = (row0 + i) * groups + g;
      const __m512i corrected = _mm512_sub_epi32(acc[i], _mm512_mullo_epi32(zero, _mm512_set1_epi32(x.sum[at])));
      const __m512 sd = _mm512_mul_ps(scale, _mm512_set1_ps(x.d[at]));
      total[i] = _mm512_fmadd_ps(sd, _mm512_cvtepi32_ps(corrected), total[i]);
    }
  }
  const __m512 add = bias ? _mm512_loadu_ps(bias + tile * kQ4Tile) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(y + (row0 + i) * w.n + tile * kQ4Tile, _mm512_add_ps(total[i], add));
}

// One row against NT tiles at once (decode): NT weight streams in flight instead of one, and each
// activation broadcast feeds NT tiles, and every line of the blocks two ahead is prefetched
// (kernels/q4_prefetch.h). A single stream reads only ~11 GB/s per core from DRAM here.
template <int NT>
void q8_tiles(const Q8Acts& x, int64_t row, const Q4Matrix& w, const float* bias, float* y, int64_t tile0) {
  const int64_t groups = w.groups();
  const __m512i low4 = _mm512_set1_epi32(0x0F0F0F0F);
  __m512 total[NT];
  for (int t = 0; t < NT; ++t) total[t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block* b[NT];
    __m512i acc[NT];
    for (int t = 0; t < NT; ++t) {
      b[t] = &w.block(tile0 + t, g);
      acc[t] = _mm512_setzero_si512();
    }
    const int8_t* q = x.q + row * w.k + g * kQ4Group;
    for (int r = 0; r < kQ4Octets; ++r) {
      const __m512i xe = _mm512_set1_epi32(load_i32(q + 8 * r));
      const __m512i xo = _mm512_set1_epi32(load_i32(q + 8 * r + 4));
      for (int t = 0; t < NT; ++t) {
        prefetch_block_slice(b[t] + kQ4PrefetchBlocks, r);
        const __m512i word = _mm512_loadu_si512(b[t]->q[r]);
        acc[t] = dot_u8s8(acc[t], _mm512_and_si512(word, low4), xe);
        acc[t] = dot_u8s8(acc[t], _mm512_and_si512(_mm512_srli_epi32(word, 4), low4), xo);
      }
    }
    const int64_t at = row * groups + g;
    const __m512i sum = _mm512_set1_epi32(x.sum[at]);
    const __m512 d = _mm512_set1_ps(x.d[at]);
    for (int t = 0; t < NT; ++t) {
      const __m512i zero = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[t]->zero)));
      const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[t]->scale)));
      const __m512i corrected = _mm512_sub_epi32(acc[t], _mm512_mullo_epi32(zero, sum));
      total[t] = _mm512_fmadd_ps(_mm512_mul_ps(scale, d), _mm512_cvtepi32_ps(corrected), total[t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    const int64_t col = (tile0 + t) * kQ4Tile;
    const __m512 add = bias ? _mm512_loadu_ps(bias + col) : _mm512_setzero_ps();
    _mm512_storeu_ps(y + row * w.n + col, _mm512_add_ps(total[t], add));
  }
}

template <int MR>
void exact_rows(const float* x, int64_t row0, const Q4Matrix& w, const float* bias, float* y, int64_t tile) {
  const int64_t groups = w.groups();
  const __m512i low4 = _mm512_set1_epi32(0xF);
  __m512 total[MR];
  for (int i = 0; i < MR; ++i) total[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const Q4Block& b = w.block(tile, g);
    const __m512 zero = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.zero))));
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int r = 0; r < kQ4Octets; ++r) {
      const __m512i word = _mm512_loadu_si512(b.q[r]);
      for (int j = 0; j < 8; ++j) {
        const __m512i q = _mm512_and_si512(_mm512_srli_epi32(word, 4 * j), low4);
        const __m512 wq = _mm512_sub_ps(_mm512_cvtepi32_ps(q), zero);  // q - z, exact in float
        for (int i = 0; i < MR; ++i)
          acc[i] = _mm512_fmadd_ps(wq, _mm512_set1_ps(x[(row0 + i) * w.k + g * kQ4Group + 8 * r + j]), acc[i]);
      }
    }
    const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.scale)));
    for (int i = 0; i < MR; ++i) total[i] = _mm512_fmadd_ps(scale, acc[i], total[i]);
  }
  const __m512 add = bias ? _mm512_loadu_ps(bias + tile * kQ4Tile) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(y + (row0 + i) * w.n + tile * kQ4Tile, _mm512_add_ps(total[i], add));
}

// Rows in blocks of 8, then 4, then 1; tiles innermost so a block of rows shares each weight read.
template <typename Rows8, typename Rows4, typename Rows1>
void over_rows(int64_t m, int64_t tile_begin, int64_t tile_end, Rows8 rows8, Rows4 rows4, Rows1 rows1) {
  int64_t i = 0;
  for (; i + 8 <= m; i += 8)
    for (int64_t t = tile_begin; t < tile_end; ++t) rows8(i, t);
  for (; i + 4 <= m; i += 4)
    for (int64_t t = tile_begin; t < tile_end; ++t) rows4(i, t);
  for (; i < m; ++i)
    for (int64_t t = tile_begin; t < tile_end; ++t) rows1(i, t);
}

}  // namespace

void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out) {
  const int64_t groups = k / kQ4Group;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  // Within each octet: even inputs first, then odd (matmul_q4.h).
  const __m512i even_odd = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = x + i * k + g * kQ4Group;
      __m512 amax = _mm512_setzero_ps();
      for (int t = 0; t < kQ4Group; t += 16) amax = _mm512_max_ps(amax, _mm512_andnot_ps(sign, _mm512_loadu_ps(xg + t)));
      const float d = _mm512_reduce_max_ps(amax) / 127.0f;
      const __m512 inv = _mm512_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
      int8_t* q = out.q + i * k + g * kQ4Group;
      __m512i sum = _mm512_setzero_si512();
      for (int t = 0; t < kQ4Group; t += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + t), inv));  // round half even
        sum = _mm512_add_epi32(sum, v);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + t), _mm512_cvtsepi32_epi8(_mm512_permutexvar_epi32(even_odd, v)));
      }
      out.d[i * groups + g] = d;
      out.sum[i * groups + g] = _mm512_reduce_add_epi32(sum);
    }
  }
}

void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end) {
  if (m < 4) {  // decode: rows are few, so block over tiles instead
    for (int64_t i = 0; i < m; ++i) {
      int64_t t = tile_begin;
      for (; t + 4 <= tile_end; t += 4) q8_tiles<4>(x, i, w, bias, y, t);
      for (; t < tile_end; ++t) q8_tiles<1>(x, i, w, bias, y, t);
    }
    return;
  }
  over_rows(m, tile_begin, tile_end,
            [&](int64_t i, int64_t t) { q8_rows<8>(x, i, w, bias, y, t); },
            [&](int64_t i, int64_t t) { q8_rows<4>(x, i, w, bias, y, t); },
            [&](int64_t i, int64_t t) { q8_rows<1>(x, i, w, bias, y, t); });
}

void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end) {
  over_rows(m, tile_begin, tile_end,
            [&](int64_t i, int64_t t) { exact_rows<8>(x, i, w, bias, y, t); },
            [&](int64_t i, int64_t t) { exact_rows<4>(x, i, w, bias, y, t); },
            [&](int64_t i, int64_t t) { exact_rows<1>(x, i, w, bias, y, t); });
}

}  // namespace qwenvl_edge::QWENVL_ISA_NS
