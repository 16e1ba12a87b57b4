// Attention's inner loops for one head, written once over a path's vector type Vec and compiled once
// per path with its flags (cpp/CMakeLists.txt: avx2, avx512 and neon, each with QWENVL_VEC_H naming
// kernels/x86/vec_avx2.h, vec_avx512.h or kernels/arm/vec_neon.h): q . k[j] four keys at a time, and the
// probability-weighted sum of value rows. The cache's elements are float or fp16 bits, widened by
// Vec::load as they are read. hd % 16 == 0.
//
// Both loops read the cache front to back, one whole row (or a chunk of eight vectors of it) after the
// other, and prefetch the rows kAhead keys on: a head's keys are only 32-64 KiB at a few hundred
// positions, too short a stream for the hardware prefetcher to ramp up on (it also stops at every 4 KiB
// page), so without this decode attention read the cache at half the speed of the weights.
#include QWENVL_VEC_H

#include <cstdint>

#include "kernels/path_kernels.h"

namespace qwenvl_edge::QWENVL_ISA_NS {
namespace {

constexpr int64_t kAhead = 8;  // rows: 2-4 KiB ahead at hd = 128

// Every 64-byte line of `count` elements from p, for reading (prefetcht0 on x86, prfm pldl1keep on arm64).
template <typename T>
void prefetch_lines(const T* p, int64_t count) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < count * static_cast<int64_t>(sizeof(T)); off += 64) __builtin_prefetch(c + off);
}

// scores[j] = (q . k[j]) * scale for j in [0, keys).
template <typename T>
void scores_of(const float* q, const T* k, int64_t keys, int64_t hd, float scale, float* scores) {
  using Reg = Vec::Reg;
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {  // four keys, one FMA chain each: four chains cover the latency
    if (j + kAhead + 4 <= keys) prefetch_lines(k + (j + kAhead) * hd, 4 * hd);
    Reg a0 = Vec::zero(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += Vec::kLanes) {
      const Reg qv = Vec::load(q + d);
      a0 = Vec::fma(qv, Vec::load(k + (j + 0) * hd + d), a0);
      a1 = Vec::fma(qv, Vec::load(k + (j + 1) * hd + d), a1);
      a2 = Vec::fma(qv, Vec::load(k + (j + 2) * hd + d), a2);
      a3 = Vec::fma(qv, Vec::load(k + (j + 3) * hd + d), a3);
    }
    Vec::store_sums4(scores + j, a0, a1, a2, a3, scale);
  }
  constexpr int kChains = 16 / Vec::kLanes;  // the last keys: 16 columns a step
  for (; j < keys; ++j) {
    Reg acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = Vec::zero();
    for (int64_t d = 0; d < hd; d += 16)
      for (int c = 0; c < kChains; ++c)
        acc[c] = Vec::fma(Vec::load(q + d + c * Vec::kLanes), Vec::load(k + j * hd + d + c * Vec::kLanes), acc[c]);
    for (int c = 1; c < kChains; ++c) acc[0] = Vec::add(acc[0], acc[c]);
    scores[j] = Vec::sum(acc[0]) * scale;
  }
}

// out[0, S lanes) = sum_j p[j] * v[j][0, S lanes): S accumulators, each row's chunk read once, whole.
template <int S, typename T>
void value_rows(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  Vec::Reg acc[S];
  for (int s = 0; s < S; ++s) acc[s] = Vec::zero();
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kAhead < keys) prefetch_lines(v + (j + kAhead) * hd, Vec::kLanes * S);
    const Vec::Reg pj = Vec::broadcast(p[j]);
    for (int s = 0; s < S; ++s) acc[s] = Vec::fma(pj, Vec::load(v + j * hd + Vec::kLanes * s), acc[s]);
  }
  for (int s = 0; s < S; ++s) Vec::store(out + Vec::kLanes * s, acc[s]);
}

// The columns left after the chunks of eight vectors: S vectors if that is what is left, else more.
// hd % 16 == 0, so S runs over the multiples of 16 columns below a chunk (only those are instantiated).
template <int S, typename T>
void value_rest(const float* p, const T* v, int64_t keys, int64_t hd, int64_t rest, float* out) {
  if constexpr (S < 8) {
    if (rest == S * Vec::kLanes) return value_rows<S>(p, v, keys, hd, out);
    value_rest<S + 16 / Vec::kLanes>(p, v, keys, hd, rest, out);
  }
}

// out[0..hd) = sum_j p[j] * v[j]: column chunks of eight vectors (the whole row of Qwen's hd = 128 on
// AVX-512, 64 columns on AVX2 and NEON), then the rest.
template <typename T>
void values_of(const float* p, const T* v, int64_t keys, int64_t hd, float* out) {
  constexpr int64_t kChunk = 8 * Vec::kLanes;
  int64_t d = 0;
  for (; d + kChunk <= hd; d += kChunk) value_rows<8>(p, v + d, keys, hd, out + d);
  if (d < hd) value_rest<16 / Vec::kLanes>(p, v + d, keys, hd, hd - d, out + d);
}

}  // namespace

void attention_scores(const float* q, const float* k, int64_t keys, int64_t hd, float scale, float* scores) {
  scores_of(q, k, keys, hd, scale, scores);
}
void attention_scores_f16(const float* q, const uint16_t* k, int64_t keys, int64_t hd, float scale, float* scores) {
  scores_of(q, k, keys, hd, scale, scores);
}
void attention_values(const float* p, const float* v, int64_t keys, int64_t hd, float* out) {
  values_of(p, v, keys, hd, out);
}
void attention_values_f16(const float* p, const uint16_t* v, int64_t keys, int64_t hd, float* out) {
  values_of(p, v, keys, hd, out);
}

}  // namespace qwenvl_edge::QWENVL_ISA_NS
