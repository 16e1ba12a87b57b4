// The decoder forward pass (decoder.h). One call runs n positions through every layer:
//   x += c_proj(attention(rope(c_attn(rms_norm(x)))));  x += mlp_c_proj(w1(h) * silu(w2(h))), h = rms_norm(x)
// then ln_f and the lm_head on the last position (or all).
#include "qwenvl_edge/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/lm_head.h"
#include "qwenvl_edge/matmul_q4.h"

namespace qwenvl_edge {
namespace {

double ntk_alpha_for(int64_t prefill, int64_t seq_length) {
  const double context = std::log2(static_cast<double>(prefill) / static_cast<double>(seq_length)) + 1.0;
  return std::max(std::pow(2.0, std::ceil(context)) - 1.0, 1.0);
}

}  // namespace

Decoder::Decoder(const std::string& weights_path, const DecoderConfig& config, const RunOptions& options)
    : cfg_(config),
      opt_(options),
      file_(weights_path),
      pool_(std::max(1, options.threads)),
      kern_(kernels_for(options.isa)) {
  const auto& c = cfg_;
  if (c.vocab <= 0 || c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.head_dim % 16 || c.heads * c.head_dim != c.hidden ||
      c.hidden % kQ4Group || c.ffn % kQ4Group || c.max_context <= 0 || c.seq_length <= 0)
    throw std::invalid_argument("decoder config: inconsistent dimensions (hidden = heads * head_dim, head_dim a multiple of 16, hidden and ffn of 128)");
  capacity_ = opt_.context > 0 ? std::min(opt_.context, c.max_context) : c.max_context;
  const int64_t d = c.hidden;
  wte_ = static_cast<const uint16_t*>(file_.get("wte", DType::kF16, {c.vocab, d}));
  file_.read_sparsely(wte_, sizeof(uint16_t) * c.vocab * d);
  if (file_.has("lm_head.q8")) {
    lm_head_i8_ = static_cast<const int8_t*>(file_.get("lm_head.q8", DType::kI8, {c.vocab, d}));
    lm_head_scale_ = static_cast<const float*>(file_.get("lm_head.scale", DType::kF32, {c.vocab}));
  } else {
    lm_head_f16_ = static_cast<const uint16_t*>(file_.get("lm_head", DType::kF16, {c.vocab, d}));
  }
  ln_f_ = static_cast<const float*>(file_.get("ln_f", DType::kF32, {d}));
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    Layer l;
    l.ln_1 = static_cast<const float*>(file_.get(p + "ln_1", DType::kF32, {d}));
    l.ln_2 = static_cast<const float*>(file_.get(p + "ln_2", DType::kF32, {d}));
    l.c_attn = q4(p + "c_attn", d, 3 * d);
    l.c_attn_bias = static_cast<const float*>(file_.get(p + "c_attn.bias", DType::kF32, {3 * d}));
    l.c_proj = q4(p + "c_proj", d, d);
    l.w1 = q4(p + "w1", d, c.ffn);
    l.w2 = q4(p + "w2", d, c.ffn);
    l.mlp_proj = q4(p + "mlp.c_proj", c.ffn, d);
    l.mlp_shared_order = (!l.w1.perm && !l.w2.perm) ||
                         (l.w1.perm && l.w2.perm && std::memcmp(l.w1.perm, l.w2.perm, sizeof(int32_t) * d) == 0);
    layers_.push_back(l);
  }
  const size_t cache = static_cast<size_t>(c.layers * c.heads * capacity_ * c.head_dim);
  // Default-initialised: pages are committed only as positions are written.
  if (opt_.kv_f16) {
    k_cache16_.reset(new uint16_t[cache]);
    v_cache16_.reset(new uint16_t[cache]);
  } else {
    k_cache_.reset(new float[cache]);
    v_cache_.reset(new float[cache]);
  }
  att_scratch_.resize(static_cast<size_t>(c.heads * capacity_));
}

Q4Matrix Decoder::q4(const std::string& name, int64_t k, int64_t n) const {
  Q4Matrix m;
  m.blocks = static_cast<const Q4Block*>(
      file_.get(name, DType::kQ4Block, {n / kQ4Tile, k / kQ4Group, static_cast<int64_t>(sizeof(Q4Block))}));
  m.k = k;
  m.n = n;
  if (file_.has(name + ".perm")) {
    m.perm = static_cast<const int32_t*>(file_.get(name + ".perm", DType::kI32, {k}));
    std::vector<bool> seen(k, false);  // a bad permutation would read out of bounds: refuse it here
    for (int64_t i = 0; i < k; ++i) {
      if (m.perm[i] < 0 || m.perm[i] >= k || seen[m.perm[i]])
        throw FormatError(file_.path() + ": tensor '" + name + ".perm' is not a permutation");
      seen[m.perm[i]] = true;
    }
  }
  return m;
}

void Decoder::ensure_scratch(int64_t n) {
  if (n <= scratch_rows_) return;
  const int64_t d = cfg_.hidden, f = cfg_.ffn, widest = std::max(d, f);
  x_.resize(n * d);
  h_.resize(n * d);
  qkv_.resize(n * 3 * d);
  attn_.resize(n * d);
  a_.resize(n * f);
  g_.resize(n * f);
  cos_.resize(n * cfg_.head_dim);
  sin_.resize(n * cfg_.head_dim);
  gathered_.resize(n * widest);
  q8_.resize(n * widest);
  q8_d_.resize(n * widest / kQ4Group);
  q8_sum_.resize(n * widest / kQ4Group);
  scratch_rows_ = n;
}

const float* Decoder::prepare(const float* x, int64_t n, const Q4Matrix& w) {
  if (w.perm) {  // act-order: gather once for all threads
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < w.k; ++j) gathered_[i * w.k + j] = x[i * w.k + w.perm[j]];
    x = gathered_.data();
  }
  if (!opt_.exact) quantize_q8(kern_, x, n, w.k, nullptr, Q8Acts{q8_.data(), q8_d_.data(), q8_sum_.data()});
  return x;
}

void Decoder::tiles(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y, int64_t b, int64_t e) {
  Q4Matrix sorted = w;
  sorted.perm = nullptr;
  if (opt_.exact)
    matmul_q4_exact(kern_, x, n, sorted, bias, y, b, e);
  else
    matmul_q4_q8(kern_, Q8Acts{q8_.data(), q8_d_.data(), q8_sum_.data()}, n, sorted, bias, y, b, e);
}

// y [n][w.n] = x [n][w.k] @ W (+ bias), the output tiles split over the pool.
void Decoder::linear(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y) {
  const float* xs = prepare(x, n, w);
  pool_.parallel_for(w.n / kQ4Tile, [&](int64_t b, int64_t e) { tiles(xs, n, w, bias, y, b, e); });
}

void Decoder::gated_mlp(int64_t n, const Layer& L) {
  const int64_t f = cfg_.ffn;
  if (!L.mlp_shared_order) {
    linear(h_.data(), n, L.w1, nullptr, a_.data());
    linear(h_.data(), n, L.w2, nullptr, g_.data());
    kern_.silu_gate(a_.data(), g_.data(), n * f);
    return;
  }
  const float* xs = prepare(h_.data(), n, L.w1);
  pool_.parallel_for(f / kQ4Tile, [&](int64_t b, int64_t e) {
    tiles(xs, n, L.w1, nullptr, a_.data(), b, e);
    tiles(xs, n, L.w2, nullptr, g_.data(), b, e);
    for (int64_t i = 0; i < n; ++i)  // the gate of this thread's own columns
      kern_.silu_gate(a_.data() + i * f + b * kQ4Tile, g_.data() + i * f + b * kQ4Tile, (e - b) * kQ4Tile);
  });
}

void Decoder::store_kv(int64_t li, const float* qkv, int64_t n, int64_t past) {
  const int64_t d = cfg_.hidden, hd = cfg_.head_dim;
  const int64_t layer = li * cfg_.heads * capacity_ * hd;
  for (int64_t p = 0; p < n; ++p)
    for (int64_t hh = 0; hh < cfg_.heads; ++hh) {
      const int64_t at = layer + (hh * capacity_ + past + p) * hd;
      const float* k = qkv + p * 3 * d + d + hh * hd;
      const float* v = k + d;
      if (opt_.kv_f16) {
        kern_.to_f16(k, hd, k_cache16_.get() + at);
        kern_.to_f16(v, hd, v_cache16_.get() + at);
      } else {
        std::memcpy(k_cache_.get() + at, k, sizeof(float) * hd);
        std::memcpy(v_cache_.get() + at, v, sizeof(float) * hd);
      }
    }
}

KvView Decoder::kv_view(int64_t li) const {
  const int64_t layer = li * cfg_.heads * capacity_ * cfg_.head_dim;
  if (opt_.kv_f16) return KvView{k_cache16_.get() + layer, v_cache16_.get() + layer, true, capacity_};
  return KvView{k_cache_.get() + layer, v_cache_.get() + layer, false, capacity_};
}

void Decoder::embed(const int32_t* ids, int64_t n, float* out) const { embed_f16(wte_, cfg_.hidden, ids, n, out); }

void Decoder::truncate(int64_t length) {
  if (length < 0 || length > length_)
    throw std::out_of_range("cannot truncate a cache of " + std::to_string(length_) + " positions to " +
                            std::to_string(length));
  length_ = length;
}

void Decoder::forward(const float* input, int64_t n, bool all_logits, float* logits) {
  const auto& c = cfg_;
  if (n <= 0) throw std::invalid_argument("forward needs at least one position");
  if (length_ + n > capacity_)
    throw std::out_of_range(std::to_string(length_) + " cached + " + std::to_string(n) + " new positions exceed the context of " +
                            std::to_string(capacity_));
  ensure_scratch(n);
  const int64_t d = c.hidden, hd = c.head_dim, past = length_;
  if (past == 0) alpha_ = c.dynamic_ntk ? ntk_alpha_for(n, c.seq_length) : 1.0;  // frozen until the cache empties
  rope_tables(past, n, hd, c.rope_base, alpha_, cos_.data(), sin_.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  float* x = x_.data();
  std::memcpy(x, input, sizeof(float) * n * d);
  for (int64_t li = 0; li < c.layers; ++li) {
    const Layer& L = layers_[li];
    kern_.rms_norm(x, L.ln_1, n, d, c.eps, h_.data());
    linear(h_.data(), n, L.c_attn, L.c_attn_bias, qkv_.data());
    float* q = qkv_.data();  // rows of [q | k | v], each d wide
    kern_.apply_rope(q, n, c.heads, hd, cos_.data(), sin_.data(), 3 * d);
    kern_.apply_rope(q + d, n, c.heads, hd, cos_.data(), sin_.data(), 3 * d);
    for (int64_t p = 0; p < n; ++p) {
      const float lg = c.logn ? logn_scale(past + p, c.seq_length) : 1.0f;
      if (lg != 1.0f)
        for (int64_t e = 0; e < d; ++e) q[p * 3 * d + e] *= lg;
    }
    store_kv(li, q, n, past);
    const KvView kv = kv_view(li);
    pool_.parallel_for(c.heads, [&](int64_t b, int64_t e) {
      for (int64_t hh = b; hh < e; ++hh)
        attention(kern_, q, 3 * d, kv, past, n, c.heads, hd, scale, hh, hh + 1, attn_.data(),
                  att_scratch_.data() + hh * capacity_);
    });
    linear(attn_.data(), n, L.c_proj, nullptr, h_.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += h_[i];

    kern_.rms_norm(x, L.ln_2, n, d, c.eps, h_.data());
    gated_mlp(n, L);
    linear(a_.data(), n, L.mlp_proj, nullptr, h_.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += h_[i];
  }
  length_ += n;

  const int64_t rows = all_logits ? n : 1;
  const float* last = x + (n - rows) * d;
  kern_.rms_norm(last, ln_f_, rows, d, c.eps, h_.data());
  pool_.parallel_for(c.vocab, [&](int64_t b, int64_t e) {
    if (lm_head_i8_ && !opt_.exact)
      lm_head_i8_q8(kern_, h_.data(), rows, lm_head_i8_, lm_head_scale_, d, c.vocab, b, e, logits);
    else if (lm_head_i8_)
      kern_.lm_head_i8(h_.data(), rows, lm_head_i8_, lm_head_scale_, d, c.vocab, b, e, logits);
    else
      kern_.lm_head_f16(h_.data(), rows, lm_head_f16_, d, c.vocab, b, e, logits);
  });
}

}  // namespace qwenvl_edge
