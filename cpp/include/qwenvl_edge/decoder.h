// The Qwen decoder of Qwen-VL on the CPU: 4-bit GPTQ linears (matmul_q4), KV-cached attention,
// RMSNorm, rotary with dynamic NTK and logn, fp16 embeddings and lm_head.
//
// Basic usage (Python owns the token loop; see bindings/decoder.cpp):
//   Decoder d("bundle/decoder.qvw", config, options);   // config must match the one the file records
//   d.embed(ids, n, x);                 // token embeddings [n][hidden]; image rows are spliced by the caller
//   d.forward(x, n, false, logits);     // prefill or step: appends n positions to the KV cache
//   d.truncate(k);                      // rewind to the first k positions (regenerate, shared chat prefix)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/isa.h"
#include "qwenvl_edge/kernels.h"
#include "qwenvl_edge/q4_block.h"
#include "qwenvl_edge/thread_pool.h"
#include "qwenvl_edge/weights_file.h"

namespace qwenvl_edge {

// Model hyperparameters, named as the manifest's decoder.config keys (docs/bundle.md 2): one spelling in
// the manifest, the Python records, the decoder file and here.
struct DecoderConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;
  double rms_eps = 1e-6;
  double rope_base = 10000.0;
  int64_t seq_length = 2048;  // the reference length of dynamic NTK and logn
  bool dynamic_ntk = true;
  bool logn_attn = true;
  int64_t max_context = 8192;  // positions the model may be run at
};

// The table of DecoderConfig's keys: what a caller must give and the decoder file records
// (cpp/model/decoder_contract.cpp). Exactly one of the three members is set.
struct ConfigKey {
  const char* name;
  int64_t DecoderConfig::*int_value;
  double DecoderConfig::*float_value;
  bool DecoderConfig::*bool_value;
};
const std::vector<ConfigKey>& decoder_config_keys();
// The value of one key, as written in messages ("32", "1e-06", "true").
std::string config_value(const DecoderConfig& c, const ConfigKey& key);
// std::invalid_argument naming the first key out of range or inconsistent with the others.
void check_config(const DecoderConfig& c);

// One tensor of the decoder file: the table every writer is held to (docs/bundle.md 4).
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  bool required;  // the optional ones are act-order permutations
};
enum class LmHead { kF16, kInt8 };
// Every tensor of a decoder file of this config, in file order (check_config first).
std::vector<TensorSpec> decoder_tensors(const DecoderConfig& c, LmHead head);

// FormatError naming the key if the file records a config other than c (a manifest that contradicts its
// decoder file: another layer count or head split would run, and answer, differently).
void check_file_config(const WeightsFile& file, const DecoderConfig& c);

// Dynamic-NTK alpha of a prefill of prefill_len positions (docs/model.md 4.4): 1 up to seq_length,
// then 2^ceil(log2(prefill_len / seq_length) + 1) - 1. The session predicts the core's choice with it.
double ntk_alpha(int64_t prefill_len, int64_t seq_length);

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
  double ntk_alpha() const { return alpha_; }  // of the prefill that started the cache
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

  // The tensors of the file, each checked against decoder_tensors(); absent optional ones are null.
  std::unordered_map<std::string, const void*> load_tensors(LmHead head) const;
  Q4Matrix q4(const std::unordered_map<std::string, const void*>& t, const std::string& name, int64_t k, int64_t n) const;
  void allocate_kv_cache();
  // x in w's input order (gathered if act-order) and, on the q8 path, quantized into the q8 scratch.
  const float* prepare(const float* x, int64_t n, const Q4Matrix& w);
  // Output tiles [b, e) of a prepared input; w's permutation is ignored (already applied).
  void tiles(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y, int64_t b, int64_t e);
  void linear(const float* x, int64_t n, const Q4Matrix& w, const float* bias, float* y);
  // a_ = w1(h) * silu(w2(h)) for the rows of h_: one prepared input and one parallel section.
  void gated_mlp(int64_t n, const Layer& layer);
  // The most positions one pass runs: longer forwards go through in chunks (see forward).
  static constexpr int64_t kMaxChunk = 512;
  // One pass over n <= kMaxChunk positions; logits for its last `rows` positions (0: none).
  void forward_chunk(const float* x, int64_t n, int64_t rows, float* logits);
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
