// The decoder forward pass (decoder.h). One call runs n positions through every layer:
//   x += c_proj(attention(rope(c_attn(rms_norm(x)))));  x += mlp_c_proj(w1(h) * silu(w2(h))), h = rms_norm(x)
// then ln_f and the lm_head on the last position (or all).
#include "qwenvl_edge/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "checked.h"
#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/lm_head.h"
#include "qwenvl_edge/matmul_q4.h"

namespace qwenvl_edge {
namespace {

const DecoderConfig& checked(const DecoderConfig& c) {
  check_config(c);
  return c;
}

template <typename T>
const T* as(const std::unordered_map<std::string, const void*>& tensors, const std::string& name) {
  return static_cast<const T*>(tensors.at(name));
}

// Small pages for the KV cache: with transparent huge pages set to "always", the first position written
// into a (layer, head) block of 2 MiB would commit the whole block; positions must cost memory only as
// they are written (docs/bundle.md: what a chat costs).
void advise_small_pages(const void* p, int64_t bytes) {
#ifdef MADV_NOHUGEPAGE
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes)) & ~(page - 1);
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_NOHUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

}  // namespace

Decoder::Decoder(const std::string& weights_path, const DecoderConfig& config, const RunOptions& options)
    : cfg_(checked(config)),
      opt_(options),
      file_(weights_path),
      pool_(std::max(1, options.threads)),
      kern_(kernels_for(options.isa)) {
  const auto& c = cfg_;
  check_file_config(file_, c);
  if (opt_.context < 0) throw std::invalid_argument("context must be >= 0 (0: the config's max_context)");
  capacity_ = opt_.context > 0 ? std::min(opt_.context, c.max_context) : c.max_context;
  allocate_kv_cache();
  const auto t = load_tensors(file_.has("lm_head.q8") ? LmHead::kInt8 : LmHead::kF16);
  const int64_t d = c.hidden_size;
  wte_ = as<uint16_t>(t, "wte");
  file_.read_sparsely(wte_, sizeof(uint16_t) * c.vocab_size * d);  // its size is in the file: no overflow
  if (t.count("lm_head.q8")) {
    lm_head_i8_ = as<int8_t>(t, "lm_head.q8");
    lm_head_scale_ = as<float>(t, "lm_head.scale");
  } else {
    lm_head_f16_ = as<uint16_t>(t, "lm_head");
  }
  ln_f_ = as<float>(t, "ln_f");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    Layer l;
    l.ln_1 = as<float>(t, p + "ln_1");
    l.ln_2 = as<float>(t, p + "ln_2");
    l.c_attn = q4(t, p + "c_attn", d, 3 * d);
    l.c_attn_bias = as<float>(t, p + "c_attn.bias");
    l.c_proj = q4(t, p + "c_proj", d, d);
    l.w1 = q4(t, p + "w1", d, c.ffn_dim);
    l.w2 = q4(t, p + "w2", d, c.ffn_dim);
    l.mlp_proj = q4(t, p + "mlp.c_proj", c.ffn_dim, d);
    l.mlp_shared_order = (!l.w1.perm && !l.w2.perm) ||
                         (l.w1.perm && l.w2.perm && std::memcmp(l.w1.perm, l.w2.perm, sizeof(int32_t) * d) == 0);
    layers_.push_back(l);
  }
}

std::unordered_map<std::string, const void*> Decoder::load_tensors(LmHead head) const {
  std::unordered_map<std::string, const void*> out;
  for (const TensorSpec& spec : decoder_tensors(cfg_, head))
    out[spec.name] = spec.required || file_.has(spec.name) ? file_.get(spec.name, spec.dtype, spec.shape) : nullptr;
  for (const auto& tensor : file_.tensors())
    if (!out.count(tensor.first))
      throw FormatError(file_.path() + ": holds tensor '" + tensor.first + "', which a decoder of this config has not");
  return out;
}

void Decoder::allocate_kv_cache() {
  const auto& c = cfg_;
  const int64_t cache = checked_product({c.num_layers, c.num_heads, capacity_, c.head_dim},
                                        "the KV cache (num_layers x num_heads x context x head_dim)");
  checked_product({cache, 2 * static_cast<int64_t>(sizeof(float))}, "the KV cache's bytes");
  const int64_t scores = checked_product({c.num_heads, capacity_}, "the attention scores (num_heads x context)");
  try {  // default-initialised: pages are committed only as positions are written
    if (opt_.kv_f16) {
      k_cache16_.reset(new uint16_t[cache]);
      v_cache16_.reset(new uint16_t[cache]);
      advise_small_pages(k_cache16_.get(), cache * 2);
      advise_small_pages(v_cache16_.get(), cache * 2);
    } else {
      k_cache_.reset(new float[cache]);
      v_cache_.reset(new float[cache]);
      advise_small_pages(k_cache_.get(), cache * 4);
      advise_small_pages(v_cache_.get(), cache * 4);
    }
    att_scratch_.resize(static_cast<size_t>(scores));
  } catch (const std::bad_alloc&) {
    throw std::length_error("cannot reserve a KV cache of " + std::to_string(capacity_) + " positions (" +
                            std::to_string((cache >> 30) * (opt_.kv_f16 ? 4 : 8)) + " GiB); choose a smaller context");
  }
}

Q4Matrix Decoder::q4(const std::unordered_map<std::string, const void*>& t, const std::string& name, int64_t k,
                     int64_t n) const {
  Q4Matrix m;
  m.blocks = as<Q4Block>(t, name);
  m.k = k;
  m.n = n;
  m.perm = as<int32_t>(t, name + ".perm");
  if (m.perm) {
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
  const int64_t d = cfg_.hidden_size, f = cfg_.ffn_dim, widest = std::max(d, f);
  // The largest buffer's size: the products below are smaller, so none of them wraps.
  checked_product({n, 3, widest}, "the scratch of " + std::to_string(n) + " positions");
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
  const int64_t f = cfg_.ffn_dim;
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
  const int64_t d = cfg_.hidden_size, hd = cfg_.head_dim;
  const int64_t layer = li * cfg_.num_heads * capacity_ * hd;  // within the cache allocate_kv_cache sized
  for (int64_t p = 0; p < n; ++p)
    for (int64_t hh = 0; hh < cfg_.num_heads; ++hh) {
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
  const int64_t layer = li * cfg_.num_heads * capacity_ * cfg_.head_dim;
  if (opt_.kv_f16) return KvView{k_cache16_.get() + layer, v_cache16_.get() + layer, true, capacity_};
  return KvView{k_cache_.get() + layer, v_cache_.get() + layer, false, capacity_};
}

void Decoder::embed(const int32_t* ids, int64_t n, float* out) const { embed_f16(wte_, cfg_.hidden_size, ids, n, out); }

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
  // NTK alpha from the whole first forward, frozen until the cache empties (docs/model.md).
  if (length_ == 0) alpha_ = c.dynamic_ntk ? qwenvl_edge::ntk_alpha(n, c.seq_length) : 1.0;
  // A long prompt goes through in chunks, so that the scratch (about 0.23 MiB per position at the 7B
  // widths, kept with the decoder) stays bounded whatever the prompt's length. Every position's result
  // is the same either way: rows are independent given the cache, and each chunk attends to the ones
  // before it through the cache.
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(kMaxChunk, n - done);
    const bool last = done + m == n;
    forward_chunk(input + done * c.hidden_size, m, all_logits ? m : (last ? 1 : 0),
                  all_logits ? logits + done * c.vocab_size : logits);
    done += m;
  }
}

void Decoder::forward_chunk(const float* input, int64_t n, int64_t rows, float* logits) {
  const auto& c = cfg_;
  ensure_scratch(n);
  const int64_t d = c.hidden_size, hd = c.head_dim, past = length_;
  const float eps = static_cast<float>(c.rms_eps);
  rope_tables(past, n, hd, c.rope_base, alpha_, cos_.data(), sin_.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  float* x = x_.data();
  std::memcpy(x, input, sizeof(float) * n * d);
  for (int64_t li = 0; li < c.num_layers; ++li) {
    const Layer& L = layers_[li];
    kern_.rms_norm(x, L.ln_1, n, d, eps, h_.data());
    linear(h_.data(), n, L.c_attn, L.c_attn_bias, qkv_.data());
    float* q = qkv_.data();  // rows of [q | k | v], each d wide
    kern_.apply_rope(q, n, c.num_heads, hd, cos_.data(), sin_.data(), 3 * d);
    kern_.apply_rope(q + d, n, c.num_heads, hd, cos_.data(), sin_.data(), 3 * d);
    for (int64_t p = 0; p < n; ++p) {
      const float lg = c.logn_attn ? logn_scale(past + p, c.seq_length) : 1.0f;
      if (lg != 1.0f)
        for (int64_t e = 0; e < d; ++e) q[p * 3 * d + e] *= lg;
    }
    store_kv(li, q, n, past);
    const KvView kv = kv_view(li);
    pool_.parallel_for(c.num_heads, [&](int64_t b, int64_t e) {
      for (int64_t hh = b; hh < e; ++hh)
        attention(kern_, q, 3 * d, kv, past, n, c.num_heads, hd, scale, hh, hh + 1, attn_.data(),
                  att_scratch_.data() + hh * capacity_);
    });
    linear(attn_.data(), n, L.c_proj, nullptr, h_.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += h_[i];

    kern_.rms_norm(x, L.ln_2, n, d, eps, h_.data());
    gated_mlp(n, L);
    linear(a_.data(), n, L.mlp_proj, nullptr, h_.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += h_[i];
  }
  length_ += n;
  if (rows == 0) return;

  const float* last = x + (n - rows) * d;
  kern_.rms_norm(last, ln_f_, rows, d, eps, h_.data());
  pool_.parallel_for(c.vocab_size, [&](int64_t b, int64_t e) {
    if (lm_head_i8_ && !opt_.exact)
      lm_head_i8_q8(kern_, h_.data(), rows, lm_head_i8_, lm_head_scale_, d, c.vocab_size, b, e, logits);
    else if (lm_head_i8_)
      kern_.lm_head_i8(h_.data(), rows, lm_head_i8_, lm_head_scale_, d, c.vocab_size, b, e, logits);
    else
      kern_.lm_head_f16(h_.data(), rows, lm_head_f16_, d, c.vocab_size, b, e, logits);
  });
}

}  // namespace qwenvl_edge
