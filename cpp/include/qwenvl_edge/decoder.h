// The Qwen decoder of Qwen-VL on the CPU: 4-bit GPTQ linears (matmul_q4), KV-cached attention,
// RMSNorm, rotary with dynamic NTK and logn, fp16 embeddings and lm_head.
//
// Basic usage (Python owns the token loop; see bindings/decoder.cpp):
//   Decoder d("bundle/decoder.qwd", config, options);
//   d.embed(ids, n, x);                 // token embeddings [n][hidden]; image rows are spliced by the caller
//   d.forward(x, n, false, logits);     // prefill or step: appends n positions to the KV cache
//   d.truncate(k);                      // rewind to the first k positions (regenerate, shared chat prefix)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/isa.h"
#include "qwenvl_edge/kernels.h"
#include "qwenvl_edge/q4_block.h"
#include "qwenvl_edge/thread_pool.h"
#include "qwenvl_edge/weights_file.h"

namespace qwenvl_edge {

// Model hyperparameters, from the bundle manifest.
struct DecoderConfig {
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  float eps = 1e-6f;
  double rope_base = 10000.0;
  int64_t seq_length = 2048;  // the reference length of dynamic NTK and logn
  bool dynamic_ntk = true;
  bool logn = true;
  int64_t max_context = 8192;  // positions the model may be run at
};

// How to run it: chosen by the user, not by the model.
struct RunOptions {
  int threads = 1;
  bool exact = false;  // fp32 activations everywhere (fidelity); else int8 activations (speed)
  Isa isa = Isa::kScalar;
  int64_t context = 0;  // KV cache capacity; 0 = max_context
  bool kv_f16 = false;  // keys and values stored as fp16: half the cache memory and attention reads
};

class Decoder {
 public:
  Decoder(const std::string& weights_path, const DecoderConfig& config, const RunOptions& options);

  const DecoderConfig& config() const { return cfg_; }
  const RunOptions& options() const { return opt_; }
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  double ntk_alpha() const { return alpha_; }
  bool int8_lm_head() const { return lm_head_i8_ != nullptr; }

  // Token embeddings [n][hidden]; ids must be < vocab (checked by the caller).
  void embed(const int32_t* ids, int64_t n, float* out) const;
  // Runs n positions on top of the cache. logits: [n][vocab] if all_logits, else [1][vocab] for the
  // last position. Throws std::out_of_range when length() + n exceeds capacity().
  void forward(const float* x, int64_t n, bool all_logits, float* logits);
  void truncate(int64_t length);
  void reset() { truncate(0); }

 private:
  struct Layer {
    const float* ln_1;
    const float* ln_2;
    Q4Matrix c_attn, c_proj, w1, w2, mlp_proj;
    const float* c_attn_bias;
    bool mlp_shared_order;  // w1 and w2 take their inputs in the same order: one prepared input serves both
  };

  Q4Matrix q4(const std::string& name, int64_t k, int64_t n) const;
  // x in w's input order (gathered if act-order) and, on the q8 path, quantized into the q8 scratch.
  const float* prepare(const float* x, int64_t n, const Q4Matrix& w);
  // Output tiles [b, e) of a prepared input; w's permutation is ignored (already applied).
  void tiles(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y, int64_t b, int64_t e);
  void linear(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y);
  // a_ = w1(h) * silu(w2(h)) for the rows of h_: one prepared input and one parallel section.
  void gated_mlp(int64_t n, const Layer& layer);
  void ensure_scratch(int64_t n);
  // Appends the rotated keys and the values of n positions of layer li at position past.
  void store_kv(int64_t li, const float* qkv, int64_t n, int64_t past);
  KvView kv_view(int64_t li) const;

  DecoderConfig cfg_;
  RunOptions opt_;
  WeightsFile file_;
  ThreadPool pool_;
  const Kernels& kern_;  // the table of opt_.isa, chosen once
  const uint16_t* wte_;
  const uint16_t* lm_head_f16_ = nullptr;  // [vocab][hidden], or the int8 pair below
  const int8_t* lm_head_i8_ = nullptr;
  const float* lm_head_scale_ = nullptr;  // [vocab]
  const float* ln_f_;
  std::vector<Layer> layers_;

  int64_t capacity_;
  int64_t length_ = 0;
  double alpha_ = 1.0;
  // [layers][heads][capacity][head_dim] rotated keys and values: float, or fp16 bits if kv_f16.
  std::unique_ptr<float[]> k_cache_, v_cache_;
  std::unique_ptr<uint16_t[]> k_cache16_, v_cache16_;

  // Scratch for a call of n positions, grown on demand.
  int64_t scratch_rows_ = 0;
  std::vector<float> x_, h_, qkv_, attn_, a_, g_, cos_, sin_, gathered_;
  std::vector<float> att_scratch_;  // [heads][capacity] attention scores
  std::vector<int8_t> q8_;
  std::vector<float> q8_d_;
  std::vector<int32_t> q8_sum_;
};

}  // namespace qwenvl_edge
