// The parts of the decoder's small kernels that do not depend on an ISA path: rotary tables, logn,
// the attention loop over heads and queries (calling a path's kernels), the embedding gather.
#include "qwenvl_edge/decoder_kernels.h"

#include <cmath>

#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

void rope_tables(int64_t start, int64_t t, int64_t head_dim, double base, double alpha, float* cos, float* sin) {
  const int64_t half = head_dim / 2;
  const float b = static_cast<float>(base * std::pow(alpha, static_cast<double>(head_dim) / (head_dim - 2)));
  for (int64_t i = 0; i < half; ++i) {
    // float32 like torch: inv_freq = 1 / base ** (arange(0, d, 2) / d), freqs = position * inv_freq
    const float inv_freq = 1.0f / std::pow(b, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    for (int64_t p = 0; p < t; ++p) {
      const float angle = static_cast<float>(start + p) * inv_freq;
      cos[p * head_dim + i] = cos[p * head_dim + half + i] = std::cos(angle);
      sin[p * head_dim + i] = sin[p * head_dim + half + i] = std::sin(angle);
    }
  }
}

float logn_scale(int64_t position, int64_t seq_length) {
  if (position + 1 <= seq_length) return 1.0f;
  return static_cast<float>(std::log(static_cast<double>(position + 1)) / std::log(static_cast<double>(seq_length)));
}

void attention(const DecoderKernels& kernels, const float* q, int64_t q_stride, const KvView& kv, int64_t past,
               int64_t t, int64_t heads, int64_t hd, float scale, int64_t head_begin, int64_t head_end, float* out,
               float* scratch) {
  const int64_t head_elems = kv.capacity * hd;
  for (int64_t h = head_begin; h < head_end; ++h)
    for (int64_t i = 0; i < t; ++i) {
      const int64_t keys = past + i + 1;  // causal: up to and including its own position
      const float* qi = q + i * q_stride + h * hd;
      float* o = out + (i * heads + h) * hd;
      if (kv.f16) {
        kernels.attention_scores_f16(qi, static_cast<const uint16_t*>(kv.k) + h * head_elems, keys, hd, scale, scratch);
        kernels.softmax(scratch, keys);
        kernels.attention_values_f16(scratch, static_cast<const uint16_t*>(kv.v) + h * head_elems, keys, hd, o);
      } else {
        kernels.attention_scores(qi, static_cast<const float*>(kv.k) + h * head_elems, keys, hd, scale, scratch);
        kernels.softmax(scratch, keys);
        kernels.attention_values(scratch, static_cast<const float*>(kv.v) + h * head_elems, keys, hd, o);
      }
    }
}

void embed_f16(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t t, float* out) {
  for (int64_t p = 0; p < t; ++p)
    for (int64_t i = 0; i < dim; ++i) out[p * dim + i] = fp16_to_fp32(table[int64_t(ids[p]) * dim + i]);
}

}  // namespace qwenvl_edge
