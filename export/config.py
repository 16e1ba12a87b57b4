"""config.json of a Qwen-VL checkpoint (Qwen-VL, Qwen-VL-Chat, Qwen-VL-Chat-Int4) as typed values.

Only the keys the architecture depends on are read; the rest (auto_map, transformers_version, ...) is
ignored. Values that would change the architecture in ways the original code does not support, or
that qwenvl-edge does not implement, are refused with a FormatError naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from qwenvl_edge.errors import FormatError

CONFIG_FILE = "config.json"
# Every top-level key of the releases' config.json, plus Hugging Face metadata and Qwen switches that do
# not change the math (dropout, attention backends, dtype flags). Any other key is refused: nobody can
# tell what an unknown key changes, and guessing would produce a wrong model silently.
KNOWN_KEYS = frozenset({
    "architectures", "attn_dropout_prob", "auto_map", "bf16", "emb_dropout_prob", "fp16", "fp32", "hidden_size",
    "initializer_range", "intermediate_size", "kv_channels", "layer_norm_epsilon", "max_position_embeddings",
    "model_type", "no_bias", "num_attention_heads", "num_hidden_layers", "onnx_safe", "quantization_config",
    "rotary_emb_base", "rotary_pct", "scale_attn_weights", "seq_length", "tie_word_embeddings", "tokenizer_type",
    "torch_dtype", "transformers_version", "use_cache", "use_dynamic_ntk", "use_flash_attn", "use_logn_attn",
    "visual", "vocab_size", "_name_or_path", "_commit_hash", "softmax_in_fp32", "use_cache_quantization",
    "use_cache_kernel", "bos_token_id", "eos_token_id", "pad_token_id", "return_dict", "output_attentions",
    "output_hidden_states",
})
KNOWN_VISUAL_KEYS = frozenset({"heads", "image_size", "image_start_id", "layers", "mlp_ratio", "output_dim",
                               "patch_size", "width"})


@dataclasses.dataclass(frozen=True)
class VisualConfig:
    image_size: int = 448
    patch_size: int = 14
    width: int = 1664
    layers: int = 48
    heads: int = 16
    mlp_ratio: float = 4.9231
    output_dim: int = 4096
    image_start_id: int = 151857
    n_queries: int = 256  # the Resampler's constructor default; not in config.json

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid

    @property
    def mlp_width(self) -> int:
        return int(self.width * self.mlp_ratio)  # int(1664 * 4.9231) = 8192

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def query_grid(self) -> int:
        return int(self.n_queries**0.5)

    @property
    def adapter_heads(self) -> int:
        return self.output_dim // 128  # fixed 128-channel heads in the original Resampler

    def to_json(self) -> dict[str, Any]:
        return {
            "heads": self.heads,
            "image_size": self.image_size,
            "image_start_id": self.image_start_id,
            "layers": self.layers,
            "mlp_ratio": self.mlp_ratio,
            "output_dim": self.output_dim,
            "patch_size": self.patch_size,
            "width": self.width,
        }


@dataclasses.dataclass(frozen=True)
class QwenVLConfig:
    vocab_size: int = 151936
    hidden_size: int = 4096
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    kv_channels: int = 128
    intermediate_size: int = 22016
    layer_norm_epsilon: float = 1e-6
    rotary_emb_base: float = 10000.0
    seq_length: int = 2048
    use_dynamic_ntk: bool = True
    use_logn_attn: bool = True
    torch_dtype: str = "bfloat16"
    visual: VisualConfig = dataclasses.field(default_factory=VisualConfig)
    # The Int4 release's quantization_config (None for float checkpoints).
    quantization: dict[str, Any] | None = None

    @property
    def head_dim(self) -> int:
        return self.kv_channels

    @property
    def ffn_dim(self) -> int:
        return self.intermediate_size // 2  # the original MLP halves the configured width

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = CONFIG_FILE) -> "QwenVLConfig":
        def need(d: dict[str, Any], key: str, where: str = "") -> Any:
            if key not in d:
                raise FormatError(f"{source}: missing key '{where}{key}'")
            return d[key]

        def refuse_unless(ok: bool, key: str, value: Any, why: str) -> None:
            if not ok:
                raise FormatError(f"{source}: '{key}' = {value!r} is not supported ({why})")

        unknown = sorted(set(raw) - KNOWN_KEYS)
        if unknown:
            raise FormatError(f"{source}: unknown key '{unknown[0]}' (qwenvl-edge cannot tell what it changes in "
                              f"the model; remove it if it is only metadata)")
        model_type = raw.get("model_type")
        refuse_unless(model_type == "qwen", "model_type", model_type, "expected 'qwen' (Qwen-VL)")
        rotary_pct = raw.get("rotary_pct", 1.0)
        refuse_unless(rotary_pct == 1.0, "rotary_pct", rotary_pct, "Qwen-VL rotates the whole head")
        refuse_unless(raw.get("no_bias", True) is True, "no_bias", raw.get("no_bias"), "Qwen-VL has no MLP bias")
        tied = raw.get("tie_word_embeddings", False)
        refuse_unless(tied is False, "tie_word_embeddings", tied, "Qwen-VL has a separate lm_head")
        scaled = raw.get("scale_attn_weights", True)
        refuse_unless(scaled is True, "scale_attn_weights", scaled, "Qwen-VL divides scores by sqrt(head_dim)")
        kv_quant = raw.get("use_cache_quantization", False)
        refuse_unless(kv_quant is False, "use_cache_quantization", kv_quant, "the KV cache is not quantized")
        vis = need(raw, "visual")
        if not isinstance(vis, dict):
            raise FormatError(f"{source}: 'visual' must be an object")
        unknown = sorted(set(vis) - KNOWN_VISUAL_KEYS)
        if unknown:
            raise FormatError(f"{source}: unknown key 'visual.{unknown[0]}' (qwenvl-edge cannot tell what it changes)")
        visual = VisualConfig(
            image_size=int(need(vis, "image_size", "visual.")),
            patch_size=int(need(vis, "patch_size", "visual.")),
            width=int(need(vis, "width", "visual.")),
            layers=int(need(vis, "layers", "visual.")),
            heads=int(need(vis, "heads", "visual.")),
            mlp_ratio=float(need(vis, "mlp_ratio", "visual.")),
            output_dim=int(need(vis, "output_dim", "visual.")),
            image_start_id=int(need(vis, "image_start_id", "visual.")),
        )
        cfg = cls(
            vocab_size=int(need(raw, "vocab_size")),
            hidden_size=int(need(raw, "hidden_size")),
            num_hidden_layers=int(need(raw, "num_hidden_layers")),
            num_attention_heads=int(need(raw, "num_attention_heads")),
            kv_channels=int(need(raw, "kv_channels")),
            intermediate_size=int(need(raw, "intermediate_size")),
            layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-6)),
            rotary_emb_base=float(raw.get("rotary_emb_base", 10000)),
            seq_length=int(raw.get("seq_length", 2048)),
            use_dynamic_ntk=bool(raw.get("use_dynamic_ntk", True)),
            use_logn_attn=bool(raw.get("use_logn_attn", True)),
            torch_dtype=str(raw.get("torch_dtype", "bfloat16")),
            visual=visual,
            quantization=raw.get("quantization_config"),
        )
        cfg.validate(source)
        return cfg

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> "QwenVLConfig":
        path = os.path.join(directory, CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError as e:
            raise FormatError(f"{path}: not found; is {directory} a Qwen-VL checkpoint directory?") from e
        except json.JSONDecodeError as e:
            raise FormatError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(raw, source=path)

    def validate(self, source: str = CONFIG_FILE) -> None:
        v = self.visual
        checks = [
            (self.kv_channels * self.num_attention_heads == self.hidden_size,
             "kv_channels * num_attention_heads must equal hidden_size"),
            (self.kv_channels % 2 == 0, "kv_channels must be even (rotate-half RoPE)"),
            (self.intermediate_size % 2 == 0, "intermediate_size must be even (the MLP uses half of it)"),
            (v.output_dim == self.hidden_size, "visual.output_dim must equal hidden_size"),
            (v.image_size % v.patch_size == 0, "visual.image_size must be a multiple of visual.patch_size"),
            (v.width % v.heads == 0, "visual.width must be a multiple of visual.heads"),
            (v.output_dim % 128 == 0, "visual.output_dim must be a multiple of 128 (adapter heads)"),
            (0 < v.image_start_id and v.image_start_id + 2 < self.vocab_size,
             "visual.image_start_id (+2 for <imgpad>) must lie inside vocab_size"),
        ]
        for ok, message in checks:
            if not ok:
                raise FormatError(f"{source}: {message}")

    def to_json(self) -> dict[str, Any]:
        """config.json in the schema of the Hugging Face release."""
        half = {"bfloat16": "bf16", "float16": "fp16"}.get(self.torch_dtype)
        out: dict[str, Any] = {
            "architectures": ["QWenLMHeadModel"],
            "attn_dropout_prob": 0.0,
            "auto_map": {
                "AutoConfig": "configuration_qwen.QWenConfig",
                "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel",
            },
            # The float releases leave all three false (auto); the Int4 release sets fp16.
            "bf16": False,
            "emb_dropout_prob": 0.0,
            "fp16": half == "fp16" and self.quantization is not None,
            "fp32": False,
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "kv_channels": self.kv_channels,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "max_position_embeddings": 8192,
            "model_type": "qwen",
            "no_bias": True,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "onnx_safe": None,
            "rotary_emb_base": _plain_number(self.rotary_emb_base),
            "rotary_pct": 1.0,
            "scale_attn_weights": True,
            "seq_length": self.seq_length,
            "tie_word_embeddings": False,
            "tokenizer_type": "QWenTokenizer",
            "torch_dtype": self.torch_dtype,
            "transformers_version": "4.32.0",
            "use_cache": True,
            "use_dynamic_ntk": self.use_dynamic_ntk,
            "use_flash_attn": "auto" if self.quantization is not None else False,
            "use_logn_attn": self.use_logn_attn,
            "visual": self.visual.to_json(),
            "vocab_size": self.vocab_size,
        }
        if self.quantization is not None:
            out["quantization_config"] = self.quantization
        return dict(sorted(out.items()))


def _plain_number(x: float) -> int | float:
    """10000.0 -> 10000, as the release writes it."""
    return int(x) if float(x).is_integer() else x
