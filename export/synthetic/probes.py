"""What a model's image features hold about where things are (benchmarks/NOTES_quality.md, "Where
things are"): how well each image token's grid cell can be read back from its feature, and where the
adapter's queries look. Used by tests/export/synthetic and benchmarks/probe_positions.py."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..reference_model import QwenVL
from ..reference_vision import get_abs_pos

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
    """The adapter's attention [B, heads, queries, patches]: the ViT runs as the reference runs it (its
    output caught on the way into the adapter), the attention is computed as reference_vision.Resampler
    and CrossAttention do (the module returns only the output)."""
    visual = model.transformer.visual
    pool = visual.attn_pool
    caught = []
    hook = pool.register_forward_pre_hook(lambda module, args: caught.append(args[0]))
    try:
        visual(pixels)
    finally:
        hook.remove()
    x = caught[0]
    keys = pool.ln_kv(pool.kv_proj(x)) + get_abs_pos(pool.pos_embed, x.shape[1])
    wq, wk, _ = pool.attn.in_proj_weight.chunk(3)
    bq, bk, _ = pool.attn.in_proj_bias.chunk(3)
    heads, dh = pool.attn.heads, pool.attn.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], -1, heads, dh).transpose(1, 2)

    q = split(F.linear(pool.ln_q(pool.query) + pool.pos_embed, wq, bq).unsqueeze(0)) / dh**0.5
    return torch.softmax(q @ split(F.linear(keys, wk, bk)).transpose(-1, -2), -1)


def mean_attended_distance(probs: torch.Tensor) -> float:
    """How far (in query cells) from its own cell a query's attention lands, on average; a uniform
    attention over 16x16 cells gives 8.3. Patch centres on a finer grid (a 448 input) are placed on the
    queries' grid."""
    queries, patches = probs.shape[-2], probs.shape[-1]
    ratio = (queries / patches) ** 0.5
    q, p = torch.from_numpy(cells(queries)), torch.from_numpy((cells(patches) + 0.5) * ratio - 0.5)
    return float((probs.double() * torch.cdist(q, p)).sum(-1).mean())


def attention_entropy(probs: torch.Tensor) -> float:
    """Mean entropy of the queries' attention, in nats (a uniform one over n patches: ln n)."""
    return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())
