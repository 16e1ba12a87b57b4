import json

import pytest

from qwenvl_edge.errors import FormatError
from qwenvl_edge.export.config import QwenVLConfig

# config.json of Qwen-VL-Chat-Int4 as released (docs/model.md 0, 13).
RELEASE_INT4 = json.loads("""{
  "architectures": ["QWenLMHeadModel"], "attn_dropout_prob": 0.0,
  "auto_map": {"AutoConfig": "configuration_qwen.QWenConfig",
               "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"},
  "bf16": false, "emb_dropout_prob": 0.0, "fp16": true, "fp32": false, "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 22016, "kv_channels": 128, "layer_norm_epsilon": 1e-06,
  "max_position_embeddings": 8192, "model_type": "qwen", "no_bias": true, "num_attention_heads": 32,
  "num_hidden_layers": 32, "onnx_safe": null,
  "quantization_config": {"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": false,
    "static_groups": false, "sym": true, "true_sequential": true, "model_name_or_path": null,
    "model_file_base_name": "model", "quant_method": "gptq"},
  "rotary_emb_base": 10000, "rotary_pct": 1.0, "scale_attn_weights": true, "seq_length": 2048,
  "tie_word_embeddings": false, "tokenizer_type": "QWenTokenizer", "torch_dtype": "float16",
  "transformers_version": "4.32.0", "use_cache": true, "use_dynamic_ntk": true, "use_flash_attn": "auto",
  "use_logn_attn": true,
  "visual": {"heads": 16, "image_size": 448, "image_start_id": 151857, "layers": 48, "mlp_ratio": 4.9231,
             "output_dim": 4096, "patch_size": 14, "width": 1664},
  "vocab_size": 151936
}""")


def test_the_release_config_reads_with_the_real_dims():
    cfg = QwenVLConfig.from_dict(RELEASE_INT4)
    assert cfg.ffn_dim == 11008 and cfg.head_dim == 128
    v = cfg.visual
    assert (v.grid, v.n_patches, v.mlp_width, v.head_dim, v.adapter_heads) == (32, 1024, 8192, 104, 32)
    assert cfg.quantization["group_size"] == 128


def test_to_json_writes_the_release_schema():
    cfg = QwenVLConfig.from_dict(RELEASE_INT4)
    assert cfg.to_json() == RELEASE_INT4


@pytest.mark.parametrize("key, value, message", [
    ("model_type", "llama", "model_type"),
    ("rotary_pct", 0.5, "rotary_pct"),
    ("tie_word_embeddings", True, "tie_word_embeddings"),
    ("kv_channels", 100, "kv_channels"),
])
def test_unsupported_values_are_refused_naming_the_key(key, value, message):
    with pytest.raises(FormatError, match=message):
        QwenVLConfig.from_dict({**RELEASE_INT4, key: value})


def test_missing_keys_are_named():
    raw = {k: v for k, v in RELEASE_INT4.items() if k != "hidden_size"}
    with pytest.raises(FormatError, match="'hidden_size'"):
        QwenVLConfig.from_dict(raw)
    raw = {**RELEASE_INT4, "visual": {k: v for k, v in RELEASE_INT4["visual"].items() if k != "width"}}
    with pytest.raises(FormatError, match="'visual.width'"):
        QwenVLConfig.from_dict(raw)


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(FormatError, match="config.json: not found"):
        QwenVLConfig.from_dir(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(FormatError, match="not valid JSON"):
        QwenVLConfig.from_dir(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"type": "linear"}}, "unknown key 'rope_scaling'"),
    ({"visual": {**RELEASE_INT4["visual"], "use_cls_token": True}}, "unknown key 'visual.use_cls_token'"),
    ({"scale_attn_weights": False}, "'scale_attn_weights' = False is not supported"),
])
def test_unknown_keys_and_unsupported_switches_are_refused(change, message):
    with pytest.raises(FormatError, match=message):
        QwenVLConfig.from_dict({**RELEASE_INT4, **change})


def test_metadata_keys_are_accepted():
    cfg = QwenVLConfig.from_dict({**RELEASE_INT4, "_name_or_path": "Qwen/Qwen-VL-Chat", "softmax_in_fp32": False})
    assert cfg.hidden_size == 4096

