"""PyTorch reference of Qwen-VL's vision side: ViT-bigG/14 (modified OpenCLIP) + the resampler
adapter + ln_post + proj (docs/model.md 1, 2). Module and parameter names follow the checkpoint under
``transformer.visual.``, so a state dict loads with ``strict=True``.

Quirks reproduced (docs/model.md 12): per-head interleaved ViT in_proj (3); no class token; LayerNorm eps 1e-6;
exact erf GELU; positional tables resized 16x16 -> 32x32 bicubically in float32 on every call (4);
queries get the 16x16 sin-cos table, keys its bicubic 32x32 resize, values nothing (4); ``x @ proj``
right-multiplication (5). Everything runs in the parameters' dtype, like the original.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import VisualConfig

LN_EPS = 1e-6


def get_abs_pos(table: torch.Tensor, target_len: int) -> torch.Tensor:
    """Resize a [S*S, C] position table to [T*T, C] (T*T = target_len): float32 bicubic (A = -0.75,
    align_corners=False, border taps clamped), row-major, cast back to the table's dtype."""
    src, dst = math.isqrt(table.shape[0]), math.isqrt(target_len)
    if src == dst:
        return table
    grid = table.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(dst * dst, -1).to(table.dtype)


def sincos_2d_table(dim: int, grid: int) -> np.ndarray:
    """The resampler's 2-D sin-cos table [grid*grid, dim] (MAE recipe, float32 numpy, docs/model.md 2.2):
    the first half encodes the column index, the second half the row index."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float32) / np.float32(dim / 4))
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")

    def one_axis(pos: np.ndarray) -> np.ndarray:
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([one_axis(cols), one_axis(rows)], axis=1).astype(np.float32)


class VisualAttention(nn.Module):
    """Megatron-style self-attention: in_proj rows are [q_h, k_h, v_h] per head h (interleaved)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, W]
        b, n, w = x.shape
        qkv = self.in_proj(x).view(b, n, self.heads, 3 * self.head_dim)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # each [B, L, H, Dh]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, Dh]
        q = q / math.sqrt(self.head_dim)  # a Python float divisor, as in the original
        probs = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, n, w)
        return self.out_proj(context)


class VisualMLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))  # exact erf GELU


class VisualBlock(nn.Module):
    def __init__(self, cfg: VisualConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.attn = VisualAttention(cfg.width, cfg.heads)
        self.ln_2 = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.mlp = VisualMLP(cfg.width, cfg.mlp_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class VisualBlocks(nn.Module):
    def __init__(self, cfg: VisualConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(VisualBlock(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class CrossAttention(nn.Module):
    """nn.MultiheadAttention's math with its parameter names: in_proj rows [W_q; W_k; W_v] in three
    contiguous blocks, heads of 128 contiguous channels, q scaled by 1/sqrt(128)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        # query [B, Q, D]; key, value [B, L, D]
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        b, nq, d = query.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, self.head_dim).transpose(1, 2)  # [B, H, n, Dh]

        q = heads(F.linear(query, wq, bq)) * (1.0 / math.sqrt(self.head_dim))
        k, v = heads(F.linear(key, wk, bk)), heads(F.linear(value, wv, bv))
        probs = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, nq, d)
        return self.out_proj(context)


class Resampler(nn.Module):
    """The VL adapter: 256 learned queries cross-attend to the 1024 patch features."""

    def __init__(self, cfg: VisualConfig):
        super().__init__()
        dim = cfg.output_dim
        self.query = nn.Parameter(torch.empty(cfg.n_queries, dim))
        # A Parameter in the original, so the checkpoint's (rounded) value is what runs.
        self.pos_embed = nn.Parameter(torch.empty(cfg.n_queries, dim))
        self.kv_proj = nn.Linear(cfg.width, dim, bias=False)
        self.attn = CrossAttention(dim, cfg.adapter_heads)
        self.ln_q = nn.LayerNorm(dim, eps=LN_EPS)
        self.ln_kv = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 1024, W] -> [B, 256, D]
        key_pos = get_abs_pos(self.pos_embed, x.shape[1])
        x = self.ln_kv(self.kv_proj(x))
        q = self.ln_q(self.query).unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.attn(q + self.pos_embed, x + key_pos, x)


class VisionTransformer(nn.Module):
    """Pixels [N, 3, 448, 448] (CLIP-normalised float) -> image features [N, 256, output_dim]."""

    def __init__(self, cfg: VisualConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.positional_embedding = nn.Parameter(torch.empty(256, cfg.width))  # the 16x16 grid
        self.ln_pre = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.transformer = VisualBlocks(cfg)
        self.attn_pool = Resampler(cfg)
        self.ln_post = nn.LayerNorm(cfg.output_dim, eps=LN_EPS)
        self.proj = nn.Parameter(torch.empty(cfg.output_dim, cfg.output_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(self.conv1.weight.dtype)
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [N, grid*grid, W], patch p = row * grid + col
        x = x + get_abs_pos(self.positional_embedding, x.shape[1])
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(self.attn_pool(x))
        return x @ self.proj


class StreamedBlocks(nn.Module):
    """The ViT's blocks loaded one at a time from ``tensor(name)`` (the checkpoint's float32 arrays
    under ``transformer.visual.``) and dropped after use: the reference at full depth in the memory
    of one block. ``after_block(i)`` runs after block i."""

    def __init__(self, cfg: VisualConfig, tensor: Callable[[str], np.ndarray],
                 after_block: Callable[[int], None] | None = None):
        super().__init__()
        self.cfg, self.tensor, self.after_block = cfg, tensor, after_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.cfg.layers):
            x = load_module(VisualBlock, self.cfg, self.tensor, f"transformer.resblocks.{i}.")(x)
            if self.after_block is not None:
                self.after_block(i)
        return x


def load_module(kind, cfg: VisualConfig, tensor: Callable[[str], np.ndarray], prefix: str = "") -> nn.Module:
    """A reference module built without allocating and given the arrays ``tensor(prefix + name)``."""
    with torch.device("meta"):
        module = kind(cfg)
    state = {name: _as_tensor(tensor(prefix + name)) for name in module.state_dict()}
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def streamed_vision(cfg: VisualConfig, tensor: Callable[[str], np.ndarray],
                    after_block: Callable[[int], None] | None = None) -> VisionTransformer:
    """The reference VisionTransformer whose ViT blocks stream from ``tensor`` (StreamedBlocks): the
    same forward, holding the stem, the adapter and one block at a time."""
    model = load_module(VisionTransformer, dataclasses.replace(cfg, layers=0), tensor)
    model.cfg = cfg
    model.transformer = StreamedBlocks(cfg, tensor, after_block)
    return model


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    array = np.asarray(array, dtype=np.float32)
    return torch.from_numpy(array if array.flags.writeable else array.copy())
