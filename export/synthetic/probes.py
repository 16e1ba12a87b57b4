"""What a model's image features hold about where things are (benchmarks/NOTES_quality.md, "Where
things are"): how well each image token's grid cell can be read back from its feature, and where the
adapter's queries look. Used by tests/export/synthetic and benchmarks/probe_positions.py."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..reference_model import QwenVL

RIDGE = 10.0


def cells(n: int) -> np.ndarray:
    """(row, col) of each of the n tokens of a square grid, in the adapter's order (row-major)."""
    return np.stack(np.divmod(np.arange(n), round(n**0.5)), 1).astype(np.float64)


def position_r2(features: torch.Tensor) -> np.ndarray:
    """R^2 of (row, col) of each image token from its feature [B, n, D]: a ridge fit on the first two
    thirds of the pictures, scored on the rest. ~1: a linear map reads the cell; <= 0: it cannot."""
    f = features.detach().double().numpy()
    b, n, d = f.shape
    x = f.reshape(b * n, d)
    x = np.c_[(x - x.mean(0)) / (x.std(0) + 1e-6), np.ones(b * n)]
    y = np.tile(cells(n), (b, 1))
    fit, held = slice(0, (2 * b // 3) * n), slice((2 * b // 3) * n, None)
    w = np.linalg.solve(x[fit].T @ x[fit] + RIDGE * np.eye(d + 1), x[fit].T @ y[fit])
    err = ((x[held] @ w - y[held]) ** 2).sum(0)
    return 1 - err / ((y[held] - y[held].mean(0)) ** 2).sum(0)


@torch.no_grad()
def adapter_attention(model: QwenVL, pixels: torch.Tensor) -> torch.Tensor:
    """The adapter's attention [B, heads, queries, patches], computed as reference_vision.CrossAttention
    does (its module returns only the output)."""
    visual = model.transformer.visual
    pool = visual.attn_pool
    x = visual.conv1(pixels).flatten(2).transpose(1, 2) + visual.positional_embedding
    kv = pool.ln_kv(pool.kv_proj(visual.transformer(visual.ln_pre(x))))
    wq, wk, _ = pool.attn.in_proj_weight.chunk(3)
    bq, bk, _ = pool.attn.in_proj_bias.chunk(3)
    heads, dh = pool.attn.heads, pool.attn.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], -1, heads, dh).transpose(1, 2)

    q = split(F.linear(pool.ln_q(pool.query) + pool.pos_embed, wq, bq).unsqueeze(0)) / dh**0.5
    k = split(F.linear(kv + pool.pos_embed, wk, bk))
    return torch.softmax(q @ k.transpose(-1, -2), -1)


def mean_attended_distance(probs: torch.Tensor) -> float:
    """How far (in cells) from its own cell a query's attention lands, on average; a uniform
    attention over 16x16 cells gives 8.3."""
    c = torch.from_numpy(cells(probs.shape[-1]))
    return float((probs.double() * torch.cdist(c, c)).sum(-1).mean())


def attention_entropy(probs: torch.Tensor) -> float:
    """Mean entropy of the queries' attention, in nats (a uniform one over n patches: ln n)."""
    return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())
