"""The AutoGPTQ on-disk layout of a 4-bit quantized Linear, in numpy (docs/model.md 8.3-8.6).

For a float weight W [out, in] (nn.Linear layout), group g = g_idx[i]:
    q[i, o] in 0..15,   W[o, i] ~= scales[g, o] * (q[i, o] - zero[g, o])
qweight [in/8, out] int32: word (r, o) holds inputs 8r..8r+7 of column o, input 8r+j in bits 4j..4j+3.
qzeros [groups, out/8] int32: word (g, c) holds the zeros of columns 8c..8c+7, column 8c+j in bits 4j.
v1 ("gptq", every AutoGPTQ/HF release) stores zero - 1; it is written and read *word-wise*, by
subtracting / adding 0x11111111 modulo 2^32. That equals the nibble-wise -1/+1 whenever no zero is 0,
and is the only decoding that round-trips asym files whose zero is 0 (docs/model.md 8.5). v2 stores the
zero as it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BITS = 4
PER_WORD = 32 // BITS
MAXQ = (1 << BITS) - 1
V1_ZERO_OFFSET = 0x11111111


@dataclasses.dataclass
class QuantizedLinear:
    """One GPTQ Linear in the checkpoint's tensors (int32 words, float16 scales)."""

    qweight: np.ndarray  # [in/8, out] int32
    qzeros: np.ndarray  # [groups, out/8] int32
    scales: np.ndarray  # [groups, out] float16
    g_idx: np.ndarray  # [in] int32


def pack_rows(q: np.ndarray) -> np.ndarray:
    """[K, N] values 0..15 -> [K/8, N] int32, packing 8 consecutive rows per word (qweight)."""
    k, n = q.shape
    if k % PER_WORD:
        raise ValueError(f"cannot pack {k} rows into {PER_WORD}-value words")
    q = q.astype(np.uint32).reshape(k // PER_WORD, PER_WORD, n)
    words = np.zeros((k // PER_WORD, n), dtype=np.uint32)
    for j in range(PER_WORD):
        words |= (q[:, j, :] & MAXQ) << np.uint32(BITS * j)
    return words.view(np.int32)


def unpack_rows(words: np.ndarray) -> np.ndarray:
    """Inverse of pack_rows: [K/8, N] int32 -> [K, N] uint8."""
    w = np.ascontiguousarray(words).view(np.uint32)  # unsigned, so nibble 7 is not sign-extended
    r, n = w.shape
    out = np.empty((r, PER_WORD, n), dtype=np.uint8)
    for j in range(PER_WORD):
        out[:, j, :] = (w >> np.uint32(BITS * j)) & MAXQ
    return out.reshape(r * PER_WORD, n)


def pack_cols(z: np.ndarray) -> np.ndarray:
    """[G, N] values 0..15 -> [G, N/8] int32, packing 8 consecutive columns per word (qzeros)."""
    return np.ascontiguousarray(pack_rows(np.ascontiguousarray(z.T)).T)


def unpack_cols(words: np.ndarray) -> np.ndarray:
    """Inverse of pack_cols: [G, N/8] int32 -> [G, N] uint8."""
    return np.ascontiguousarray(unpack_rows(np.ascontiguousarray(words.T)).T)


def pack_zeros(zeros: np.ndarray, v1: bool = True) -> np.ndarray:
    words = pack_cols(zeros).view(np.uint32)
    if v1:
        words = words - np.uint32(V1_ZERO_OFFSET)  # wraps modulo 2^32, by design
    return words.view(np.int32)


def unpack_zeros(qzeros: np.ndarray, v1: bool = True) -> np.ndarray:
    words = np.ascontiguousarray(qzeros).view(np.uint32)
    if v1:
        words = words + np.uint32(V1_ZERO_OFFSET)
    return unpack_cols(words.view(np.int32))


def dequantize(layer: QuantizedLinear, v1: bool = True) -> np.ndarray:
    """The float weight [out, in] (nn.Linear layout) in float32."""
    q = unpack_rows(layer.qweight).astype(np.float32)  # [in, out]
    z = unpack_zeros(layer.qzeros, v1).astype(np.float32)  # [groups, out]
    s = layer.scales.astype(np.float32)
    g = layer.g_idx.astype(np.int64)
    return np.ascontiguousarray(((q - z[g]) * s[g]).T)


def group_grid(x: np.ndarray, sym: bool) -> tuple[np.ndarray, np.ndarray]:
    """The GPTQ quantizer's (scale, zero) per output row of one group x [out, members]: the range is
    forced to include 0; sym: scale = 2 max|x| / 15, zero 8; asym: scale = (max - min) / 15, zero =
    round(-min / scale). The scale is rounded to float16 first (what the checkpoint stores), and the
    zero derived from the rounded scale."""
    x = np.asarray(x, dtype=np.float32)
    xmin = np.minimum(x.min(axis=1), 0.0)
    xmax = np.maximum(x.max(axis=1), 0.0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = np.where(empty, -1.0, xmin)
    xmax = np.where(empty, 1.0, xmax)
    scale = ((xmax - xmin) / MAXQ).astype(np.float16)
    scale = np.maximum(scale, np.float16(2.0**-24))  # a range below float16's resolution: the smallest scale
    s = scale.astype(np.float32)
    zero = np.full(len(x), (MAXQ + 1) // 2, np.float32) if sym else np.round(-xmin / s)
    return scale, np.clip(zero, 0, MAXQ).astype(np.float32)


def quantize_group(x: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """q = clamp(round(x / scale) + zero, 0, 15) per row of x [out, members] (uint8)."""
    s = scale.astype(np.float32)
    return np.clip(np.round(np.asarray(x, np.float32) / s[:, None]) + zero[:, None], 0, MAXQ).astype(np.uint8)


def quantize_rtn(
    weight: np.ndarray, group_size: int = 128, sym: bool = True, g_idx: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Round-to-nearest 4-bit quantization with the GPTQ quantizer's grid (docs/model.md 8.5).

    weight: [out, in] float. g_idx [in] assigns inputs to groups (default i // group_size; a permuted
    assignment mimics act-order). Returns (q [in, out] uint8, scales [groups, out] float16,
    zeros [groups, out] uint8, g_idx [in] int32). The grid is computed from the float16-rounded
    scale, so that dequantize() reproduces exactly what round-to-nearest chose.
    """
    w = np.asarray(weight, dtype=np.float32)
    out_features, in_features = w.shape
    if g_idx is None:
        g_idx = np.arange(in_features) // group_size
    g_idx = np.asarray(g_idx, dtype=np.int32)
    groups = int(g_idx.max()) + 1
    scales = np.empty((groups, out_features), dtype=np.float16)
    zeros = np.empty((groups, out_features), dtype=np.uint8)
    q = np.empty((in_features, out_features), dtype=np.uint8)
    for g in range(groups):
        cols = np.flatnonzero(g_idx == g)
        x = w[:, cols]  # [out, members]
        scale, zero = group_grid(x, sym)
        q[cols, :] = quantize_group(x, scale, zero).T
        scales[g], zeros[g] = scale, zero
    return q, scales, zeros, g_idx


def quantize_linear(weight: np.ndarray, group_size: int = 128, sym: bool = True,
                    g_idx: np.ndarray | None = None, v1: bool = True) -> QuantizedLinear:
    q, scales, zeros, g_idx = quantize_rtn(weight, group_size, sym, g_idx)
    return QuantizedLinear(pack_rows(q), pack_zeros(zeros, v1), scales, g_idx)
