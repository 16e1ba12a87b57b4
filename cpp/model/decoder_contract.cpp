// What a decoder file must hold for a config (decoder.h): the config keys, their checks, the tensor
// table, and NTK alpha. The exporter's and the bench's writers are held to the same table through
// qwenvl_edge._core (DECODER_CONFIG_KEYS, decoder_tensors), so it is written here only.
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "checked.h"
#include "qwenvl_edge/decoder.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {
namespace {

constexpr int64_t kMaxConfigValue = int64_t(1) << 40;  // any dimension or length: far above real use

ConfigKey int_key(const char* name, int64_t DecoderConfig::*member) { return {name, member, nullptr, nullptr}; }
ConfigKey float_key(const char* name, double DecoderConfig::*member) { return {name, nullptr, member, nullptr}; }
ConfigKey bool_key(const char* name, bool DecoderConfig::*member) { return {name, nullptr, nullptr, member}; }

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("decoder config: " + message);
}

// The five linears of a block as (name, k inputs, n outputs).
struct Linear {
  const char* name;
  int64_t k, n;
};

std::vector<Linear> block_linears(const DecoderConfig& c) {
  const int64_t d = c.hidden_size, f = c.ffn_dim;
  return {{"c_attn", d, 3 * d}, {"c_proj", d, d}, {"w1", d, f}, {"w2", d, f}, {"mlp.c_proj", f, d}};
}

}  // namespace

const std::vector<ConfigKey>& decoder_config_keys() {
  static const std::vector<ConfigKey> keys = {
      int_key("vocab_size", &DecoderConfig::vocab_size),
      int_key("hidden_size", &DecoderConfig::hidden_size),
      int_key("num_layers", &DecoderConfig::num_layers),
      int_key("num_heads", &DecoderConfig::num_heads),
      int_key("head_dim", &DecoderConfig::head_dim),
      int_key("ffn_dim", &DecoderConfig::ffn_dim),
      float_key("rms_eps", &DecoderConfig::rms_eps),
      float_key("rope_base", &DecoderConfig::rope_base),
      int_key("seq_length", &DecoderConfig::seq_length),
      bool_key("dynamic_ntk", &DecoderConfig::dynamic_ntk),
      bool_key("logn_attn", &DecoderConfig::logn_attn),
      int_key("max_context", &DecoderConfig::max_context),
  };
  return keys;
}

std::string config_value(const DecoderConfig& c, const ConfigKey& key) {
  if (key.int_value) return std::to_string(c.*key.int_value);
  if (key.bool_value) return c.*key.bool_value ? "true" : "false";
  std::ostringstream s;
  s.precision(17);
  s << c.*key.float_value;
  return s.str();
}

void check_config(const DecoderConfig& c) {
  for (const ConfigKey& key : decoder_config_keys())
    if (key.int_value)
      require(c.*key.int_value >= 1 && c.*key.int_value <= kMaxConfigValue,
              std::string(key.name) + " = " + config_value(c, key) + " is outside 1.." + std::to_string(kMaxConfigValue));
  require(std::isfinite(c.rms_eps) && c.rms_eps > 0 && c.rms_eps < 1, "rms_eps must be in (0, 1)");
  require(std::isfinite(c.rope_base) && c.rope_base > 1, "rope_base must be a finite number > 1");
  require(c.head_dim % 16 == 0, "head_dim must be a multiple of 16");
  require(c.hidden_size % kQ4Group == 0 && c.ffn_dim % kQ4Group == 0,
          "hidden_size and ffn_dim must be multiples of " + std::to_string(kQ4Group));
  require(checked_product({c.num_heads, c.head_dim}, "num_heads x head_dim") == c.hidden_size,
          "num_heads x head_dim = " + std::to_string(c.num_heads) + " x " + std::to_string(c.head_dim) +
              " must equal hidden_size = " + std::to_string(c.hidden_size));
}

std::vector<TensorSpec> decoder_tensors(const DecoderConfig& c, LmHead head) {
  const int64_t v = c.vocab_size, d = c.hidden_size;
  std::vector<TensorSpec> t = {{"wte", DType::kF16, {v, d}, true}};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    t.push_back({p + "ln_1", DType::kF32, {d}, true});
    t.push_back({p + "ln_2", DType::kF32, {d}, true});
    for (const Linear& l : block_linears(c)) {
      t.push_back({p + l.name, DType::kQ4Block, {l.n / kQ4Tile, l.k / kQ4Group, int64_t(sizeof(Q4Block))}, true});
      t.push_back({p + l.name + ".perm", DType::kI32, {l.k}, false});  // act-order linears only
    }
    t.push_back({p + "c_attn.bias", DType::kF32, {3 * d}, true});
  }
  t.push_back({"ln_f", DType::kF32, {d}, true});
  if (head == LmHead::kInt8) {
    t.push_back({"lm_head.q8", DType::kI8, {v, d}, true});
    t.push_back({"lm_head.scale", DType::kF32, {v}, true});
  } else {
    t.push_back({"lm_head", DType::kF16, {v, d}, true});
  }
  return t;
}

void check_file_config(const WeightsFile& file, const DecoderConfig& c) {
  const auto& recorded = file.config();
  for (const auto& entry : recorded) {
    bool known = false;
    for (const ConfigKey& key : decoder_config_keys()) known = known || entry.first == key.name;
    if (!known) throw FormatError(file.path() + ": records an unknown config key '" + entry.first + "'");
  }
  DecoderConfig written;
  for (const ConfigKey& key : decoder_config_keys()) {
    const auto it = recorded.find(key.name);
    if (it == recorded.end()) throw FormatError(file.path() + ": does not record the config key '" + key.name + "'");
    if (key.int_value) {
      std::memcpy(&(written.*key.int_value), &it->second, 8);
    } else if (key.float_value) {
      std::memcpy(&(written.*key.float_value), &it->second, 8);
    } else {
      if (it->second > 1) throw FormatError(file.path() + ": config key '" + key.name + "' is not a bool");
      written.*key.bool_value = it->second == 1;
    }
    const std::string given = config_value(c, key), wrote = config_value(written, key);
    if (given != wrote)
      throw FormatError(file.path() + ": written for " + key.name + " = " + wrote + ", but the config given (the " +
                        "manifest's decoder.config) says " + key.name + " = " + given);
  }
}

double ntk_alpha(int64_t prefill_len, int64_t seq_length) {
  if (prefill_len < 1 || seq_length < 1) throw std::invalid_argument("ntk_alpha needs lengths >= 1");
  const double context = std::log2(static_cast<double>(prefill_len) / static_cast<double>(seq_length)) + 1.0;
  return std::max(std::pow(2.0, std::ceil(context)) - 1.0, 1.0);
}

}  // namespace qwenvl_edge
