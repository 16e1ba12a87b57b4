"""PyTorch reference of the Qwen-7B decoder inside Qwen-VL (docs/model.md 4): RMSNorm, rotate-half RoPE with
dynamic NTK and logn scaling, c_attn with bias, ``c_proj(w1(x) * silu(w2(x)))``, a KV cache.

Quirks reproduced (docs/model.md 12): w2 is the gate (1); the FFN width is intermediate_size // 2 (2);
rotate-half RoPE on raw positions (6); NTK alpha decided at prefill and kept while decoding, logn only
from position seq_length on (7); the score divisor sqrt(head_dim) is a tensor in the model dtype, so
it rounds to 11.3125 in bf16/fp16 (8). RMSNorm normalises in float32, casts back, then scales.
Deliberate deviations: a multi-token call on a non-empty cache gets a correct causal mask (the
original's past_length bug, quirk 14, is not copied); logn keeps following its formula past position
32766, where the original's table ends.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import QwenVLConfig


def ntk_alpha(prefill_len: int, seq_length: int) -> float:
    """Dynamic-NTK alpha for a prefill of ``prefill_len`` tokens: 1 up to seq_length, then 3, 7, ..."""
    context = math.log(prefill_len / seq_length, 2) + 1
    return max(2 ** math.ceil(context) - 1, 1)


def rotary_tables(positions: torch.Tensor, dim: int, base: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, dim] in float32 for the given absolute positions (pairs (i, i + dim/2) share a
    frequency)."""
    base = base * alpha ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(positions.float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, Dh]; cos/sin [T, Dh]. Computed in float32, cast back."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return (xf * cos + rotated * sin).type_as(x)


def logn_factors(positions: torch.Tensor, seq_length: int) -> torch.Tensor:
    """float32 [T]: ln(p+1)/ln(seq_length) where p+1 > seq_length, else 1."""
    return torch.tensor([math.log(p + 1, seq_length) if p + 1 > seq_length else 1.0 for p in positions.tolist()])


@dataclasses.dataclass
class KVCache:
    """Rotated keys and values of every layer, [B, S, H, Dh] each, and the NTK alpha of the prefill."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    ntk_alpha: float

    @property
    def length(self) -> int:
        return self.keys[0].shape[1] if self.keys else 0

    def truncate(self, length: int) -> None:
        self.keys = [k[:, :length] for k in self.keys]
        self.values = [v[:, :length] for v in self.values]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class Attention(nn.Module):
    def __init__(self, cfg: QwenVLConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        d = cfg.hidden_size
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, logn, mask, cache: KVCache, layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (p.view(b, t, self.heads, self.head_dim) for p in self.c_attn(x).split(d, dim=2))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        k = torch.cat((cache.keys[layer], k), dim=1)
        v = torch.cat((cache.values[layer], v), dim=1)
        cache.keys[layer], cache.values[layer] = k, v
        if logn is not None:
            q = q * logn.type_as(q)[None, :, None, None]
        q, k, v = (p.transpose(1, 2) for p in (q, k, v))  # [B, H, *, Dh]
        scores = q @ k.transpose(-1, -2)
        scores = scores / torch.full([], self.head_dim**0.5, dtype=scores.dtype)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1).type(v.dtype)
        return self.c_proj((probs @ v).transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, cfg: QwenVLConfig):
        super().__init__()
        d, f = cfg.hidden_size, cfg.ffn_dim
        self.w1 = nn.Linear(d, f, bias=False)
        self.w2 = nn.Linear(d, f, bias=False)
        self.c_proj = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.w1(x) * F.silu(self.w2(x)))  # w2 is the gate


class Block(nn.Module):
    def __init__(self, cfg: QwenVLConfig):
        super().__init__()
        self.ln_1 = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.attn = Attention(cfg)
        self.ln_2 = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, logn, mask, cache: KVCache, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cos, sin, logn, mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class Decoder(nn.Module):
    """The decoder blocks and the final norm; embeddings in, normalised hidden states out."""

    def __init__(self, cfg: QwenVLConfig):
        super().__init__()
        self.cfg = cfg
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.ln_f = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)

    def new_cache(self, batch: int, prefill_len: int) -> KVCache:
        cfg = self.cfg
        alpha = ntk_alpha(prefill_len, cfg.seq_length) if cfg.use_dynamic_ntk else 1.0
        empty = self.ln_f.weight.new_zeros(batch, 0, cfg.num_attention_heads, cfg.head_dim)
        n = cfg.num_hidden_layers
        return KVCache([empty] * n, [empty] * n, alpha)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """x: [B, T, D] input embeddings; returns (hidden [B, T, D] after ln_f, the extended cache)."""
        cfg = self.cfg
        b, t, _ = x.shape
        if cache is None or cache.length == 0:
            cache = self.new_cache(b, t)
        past = cache.length
        positions = torch.arange(past, past + t)
        cos, sin = rotary_tables(positions, cfg.head_dim, cfg.rotary_emb_base, cache.ntk_alpha)
        logn = logn_factors(positions, cfg.seq_length) if cfg.use_logn_attn else None
        mask = None
        if t > 1:  # like the original, a single new token attends to everything without a mask
            allowed = torch.ones(t, past + t, dtype=torch.bool).tril(diagonal=past)
            mask = torch.zeros(t, past + t, dtype=x.dtype).masked_fill(~allowed, torch.finfo(x.dtype).min)
        for layer, block in enumerate(self.h):
            x = block(x, cos, sin, logn, mask, cache, layer)
        return self.ln_f(x), cache
