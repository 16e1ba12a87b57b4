"""GPTQ tensors -> the native decoder's Q4Block tiles (cpp/include/qwenvl_edge/q4_block.h).

The GPTQ word of octet r of a group for column n is kept as it is; only the order of the words
changes, from [K/8][N] to [N/16 tiles][K/128 groups][16 octets][16 columns], with each block's 16 fp16
scales and 16 zero points (the zero itself, not v1's zero - 1) right after its 1024 bytes. An act-order
weight (a non-trivial g_idx) first has its input rows sorted by group (a stable counting sort), and
the permutation is returned for the kernels to gather activations with.
"""

from __future__ import annotations

import numpy as np

from . import gptq_format

GROUP = 128  # the group size the native kernels run
TILE = 16
BLOCK_DTYPE = np.dtype([("q", "<u4", (GROUP // 8, TILE)), ("scale", "<f2", (TILE,)), ("zero", "u1", (TILE,))])
assert BLOCK_DTYPE.itemsize == 1072


def repack(layer: gptq_format.QuantizedLinear, v1: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(blocks uint8 [N/16, K/128, 1072], perm int32 [K] or None)."""
    q = gptq_format.unpack_rows(layer.qweight)  # [K, N]
    k, n = q.shape
    if k % GROUP or n % TILE:
        raise ValueError(f"a {k}x{n} weight does not tile: K must be a multiple of {GROUP}, N of {TILE}")
    groups = k // GROUP
    if layer.scales.shape != (groups, n):
        raise ValueError(f"scales of shape {layer.scales.shape} do not match group size {GROUP} (expected {(groups, n)})")
    g_idx = np.asarray(layer.g_idx)
    perm = None
    if not np.array_equal(g_idx, np.arange(k) // GROUP):
        if g_idx.min() < 0 or g_idx.max() >= groups or np.any(np.bincount(g_idx, minlength=groups) != GROUP):
            raise ValueError(f"g_idx does not assign exactly {GROUP} inputs to each of {groups} groups")
        perm = np.argsort(g_idx, kind="stable").astype(np.int32)
        q = q[perm]
    words = gptq_format.pack_rows(q).view(np.uint32)  # [K/8, N], now in sorted input order
    tiles = n // TILE
    blocks = np.zeros((tiles, groups), dtype=BLOCK_DTYPE)
    blocks["q"] = words.reshape(groups, GROUP // 8, tiles, TILE).transpose(2, 0, 1, 3)
    blocks["scale"] = layer.scales.astype(np.float16).reshape(groups, tiles, TILE).transpose(1, 0, 2)
    zeros = gptq_format.unpack_zeros(layer.qzeros, v1)
    blocks["zero"] = zeros.reshape(groups, tiles, TILE).transpose(1, 0, 2)
    return blocks.view(np.uint8).reshape(tiles, groups, BLOCK_DTYPE.itemsize), perm
