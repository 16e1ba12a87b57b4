"""Independent float64 numpy implementations of the formulas of docs/model.md 1-4, written from its text (not
from the torch reference), to check the PyTorch reference against."""

from __future__ import annotations

import math

import numpy as np

SQRT1_2 = 1.0 / math.sqrt(2.0)
_erf = np.vectorize(math.erf)


def cubic_weights(t: float, a: float = -0.75) -> np.ndarray:
    """Cubic-convolution weights of the taps at offsets -1, 0, 1, 2 for a fractional position t."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)])


def bicubic_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] resampling matrix of PyTorch's bicubic, align_corners=False, border taps clamped."""
    m = np.zeros((dst, src))
    scale = src / dst
    for i in range(dst):
        x = (i + 0.5) * scale - 0.5
        x0 = math.floor(x)
        for tap, w in zip(range(x0 - 1, x0 + 3), cubic_weights(x - x0)):
            m[i, min(max(tap, 0), src - 1)] += w
    return m


def resize_table(table: np.ndarray, dst: int) -> np.ndarray:
    """[S*S, C] row-major grid -> [dst*dst, C]."""
    src = math.isqrt(table.shape[0])
    grid = table.reshape(src, src, -1).astype(np.float64)
    m = bicubic_matrix(src, dst)
    return np.einsum("ir,jc,rcx->ijx", m, m, grid).reshape(dst * dst, -1)


def sincos_table(dim: int, grid: int) -> np.ndarray:
    """Spec 2.2 literally: m = r*G + c; first half encodes c, second half r."""
    quarter = dim // 4
    pe = np.zeros((grid * grid, dim))
    for r in range(grid):
        for c in range(grid):
            for k in range(quarter):
                w = 1.0 / 10000 ** (k / quarter)
                m = r * grid + c
                pe[m, k], pe[m, quarter + k] = math.sin(c * w), math.cos(c * w)
                pe[m, 2 * quarter + k], pe[m, 3 * quarter + k] = math.sin(r * w), math.cos(r * w)
    return pe


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0, alpha: float = 1.0) -> np.ndarray:
    """Rotate-half RoPE on x [T, H, D]: pair (i, i + D/2) rotates by p * theta_i."""
    d = x.shape[-1]
    base = base * alpha ** (d / (d - 2))
    theta = base ** (-np.arange(0, d, 2) / d)  # [D/2]
    ang = positions[:, None] * theta[None, :]  # [T, D/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def ntk_alpha(n: int, seq_length: int) -> float:
    return max(2 ** math.ceil(math.log2(n / seq_length) + 1) - 1, 1)


def layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps=1e-6):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x * SQRT1_2))


def _w(sd, name):
    return np.asarray(sd[name], dtype=np.float64)


def resampler(sd, x, prefix="transformer.visual.attn_pool."):
    """x [L, W] patch features -> [Q, D]; 128-channel heads, positions on q and k only."""
    g = lambda n: _w(sd, prefix + n)  # noqa: E731
    d = g("query").shape[1]
    kv = layer_norm(x @ g("kv_proj.weight").T, g("ln_kv.weight"), g("ln_kv.bias"))
    q = layer_norm(g("query"), g("ln_q.weight"), g("ln_q.bias"))
    pos = g("pos_embed")
    key_pos = resize_table(pos, math.isqrt(x.shape[0]))
    w, b = g("attn.in_proj_weight"), g("attn.in_proj_bias")
    qh = (q + pos) @ w[:d].T + b[:d]
    kh = (kv + key_pos) @ w[d : 2 * d].T + b[d : 2 * d]
    vh = kv @ w[2 * d :].T + b[2 * d :]
    heads = d // 128
    out = np.zeros((q.shape[0], d))
    for h in range(heads):
        s = slice(h * 128, (h + 1) * 128)
        out[:, s] = softmax(qh[:, s] @ kh[:, s].T / math.sqrt(128)) @ vh[:, s]
    return out @ g("attn.out_proj.weight").T + g("attn.out_proj.bias")


def vision(sd, cfg, pixels: np.ndarray) -> np.ndarray:
    """One image [3, S, S] -> [256, D], docs/model.md 1.1-1.2 and 2.1."""
    v = cfg.visual
    g = lambda n: _w(sd, "transformer.visual." + n)  # noqa: E731
    p, grid = v.patch_size, v.grid
    patches = pixels.reshape(3, grid, p, grid, p).transpose(1, 3, 0, 2, 4).reshape(grid * grid, -1)
    x = patches @ g("conv1.weight").reshape(v.width, -1).T
    x = x + resize_table(g("positional_embedding"), grid)
    x = layer_norm(x, g("ln_pre.weight"), g("ln_pre.bias"))
    hd = v.head_dim
    for i in range(v.layers):
        b = lambda n: g(f"transformer.resblocks.{i}." + n)  # noqa: E731,B023
        h = layer_norm(x, b("ln_1.weight"), b("ln_1.bias"))
        qkv = h @ b("attn.in_proj.weight").T + b("attn.in_proj.bias")
        ctx = np.zeros_like(x)
        for head in range(v.heads):
            base = head * 3 * hd  # rows [q_h; k_h; v_h] per head
            q, k, val = (qkv[:, base + j * hd : base + (j + 1) * hd] for j in range(3))
            ctx[:, head * hd : (head + 1) * hd] = softmax(q @ k.T / math.sqrt(hd)) @ val
        x = x + ctx @ b("attn.out_proj.weight").T + b("attn.out_proj.bias")
        h = layer_norm(x, b("ln_2.weight"), b("ln_2.bias"))
        x = x + gelu(h @ b("mlp.c_fc.weight").T + b("mlp.c_fc.bias")) @ b("mlp.c_proj.weight").T + b("mlp.c_proj.bias")
    x = layer_norm(resampler(sd, x), g("ln_post.weight"), g("ln_post.bias"))
    return x @ g("proj")


def decoder_logits(sd, cfg, embeds: np.ndarray) -> np.ndarray:
    """Embeddings [T, D] of a fresh sequence -> logits [T, vocab], docs/model.md 4."""
    t, d = embeds.shape
    heads, hd = cfg.num_attention_heads, cfg.head_dim
    positions = np.arange(t, dtype=np.float64)
    alpha = ntk_alpha(t, cfg.seq_length) if cfg.use_dynamic_ntk else 1.0
    logn = np.array([math.log(p + 1) / math.log(cfg.seq_length) if p + 1 > cfg.seq_length else 1.0
                     for p in range(t)]) if cfg.use_logn_attn else np.ones(t)
    causal = np.triu(np.full((t, t), -np.inf), k=1)
    x = embeds.astype(np.float64)
    for i in range(cfg.num_hidden_layers):
        b = lambda n: _w(sd, f"transformer.h.{i}." + n)  # noqa: E731,B023
        h = rms_norm(x, b("ln_1.weight"))
        qkv = h @ b("attn.c_attn.weight").T + b("attn.c_attn.bias")
        q, k, v = (qkv[:, j * d : (j + 1) * d].reshape(t, heads, hd) for j in range(3))
        q = rope(q, positions, cfg.rotary_emb_base, alpha) * logn[:, None, None]
        k = rope(k, positions, cfg.rotary_emb_base, alpha)
        ctx = np.stack([softmax(q[:, n] @ k[:, n].T / math.sqrt(hd) + causal) @ v[:, n] for n in range(heads)], 1)
        x = x + ctx.reshape(t, d) @ b("attn.c_proj.weight").T
        h = rms_norm(x, b("ln_2.weight"))
        gate = h @ b("mlp.w2.weight").T  # w2 is the gate
        x = x + ((h @ b("mlp.w1.weight").T) * (gate / (1 + np.exp(-gate)))) @ b("mlp.c_proj.weight").T
    return rms_norm(x, _w(sd, "transformer.ln_f.weight")) @ _w(sd, "lm_head.weight").T
