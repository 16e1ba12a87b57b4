"""What each phase has to do, from the model's shape: the FLOPs of a vision pass and of a prefill
token, the bytes a decode token reads. Dividing a measured rate by the roof of its resource gives
the fraction of the machine a phase uses."""

from __future__ import annotations

from qwenvl_edge.export.config import QwenVLConfig, VisualConfig
from qwenvl_edge.export.decoder_file import decoder_config

from . import synthetic_decoder


def vision_flops(v: VisualConfig) -> float:
    """Multiply-adds x 2 of one image through the ViT (patch conv, blocks) and the adapter."""
    p = (v.image_size // v.patch_size) ** 2  # patches
    w, d, q = v.width, v.output_dim, v.n_queries
    conv = 2 * p * 3 * v.patch_size**2 * w
    block = 2 * p * (4 * w * w + 2 * w * v.mlp_width) + 4 * p * p * w  # linears + scores and mixing
    # kv_proj, the key and value projections, attention, out_proj (the queries' projection is a constant
    # of the exported graph)
    adapter = 2 * p * w * d + 2 * (2 * p) * d * d + 4 * q * p * d + 2 * q * d * d
    return conv + v.layers * block + adapter + 2 * q * d * d  # + proj


def prefill_flops_per_token(cfg: QwenVLConfig, prompt: int) -> float:
    """Per token of a ``prompt``-token prefill: the block linears and the causal attention (average
    length (prompt + 1) / 2), the lm_head of the last position spread over the prompt."""
    d, f = cfg.hidden_size, cfg.ffn_dim
    linears = 2 * (4 * d * d + 3 * d * f)
    attention = 4 * d * (prompt + 1) / 2
    return cfg.num_hidden_layers * (linears + attention) + 2 * d * cfg.vocab_size / prompt


def decode_bytes_per_token(cfg: QwenVLConfig, lm_head: str = "f16") -> int:
    return synthetic_decoder.decode_bytes_ours(decoder_config(cfg), lm_head)
