"""The decoder's small kernel families (RMSNorm, RoPE, logn, attention, SiLU gate, embedding) against
numpy on fresh random data, awkward shapes, and every ISA path where a family has SIMD variants."""

import math

import numpy as np
import pytest

import numpy_reference as npref
from qwenvl_edge._core import kernels

ISAS = kernels.supported_isas()


@pytest.mark.parametrize("rows, dim", [(1, 1), (3, 7), (5, 256), (2, 4096)])
def test_rms_norm(rows, dim):
    rng = np.random.default_rng([rows, dim])
    x = (rng.standard_normal((rows, dim)) * 3).astype(np.float32)
    w = rng.standard_normal(dim).astype(np.float32)
    np.testing.assert_allclose(kernels.rms_norm(x, w, 1e-6), npref.rms_norm(x.astype(np.float64), w), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("start, t, hd, alpha", [(0, 1, 16, 1.0), (5, 9, 64, 1.0), (2040, 20, 128, 3.0), (9000, 3, 128, 7.0)])
def test_rope(start, t, hd, alpha):
    rng = np.random.default_rng([start, t, hd])
    x = rng.standard_normal((t, 3, hd)).astype(np.float32)
    cos, sin = kernels.rope_tables(start, t, hd, 10000.0, alpha)
    got = kernels.apply_rope(x, cos, sin)
    want = npref.rope(x.astype(np.float64), np.arange(start, start + t, dtype=np.float64), 10000.0, alpha)
    # float32 angles of large positions carry ~position * 2^-24 rad of error, as in the original
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(start + t, 64))


def test_logn_scale():
    assert kernels.logn_scale(2047, 2048) == 1.0
    assert kernels.logn_scale(2048, 2048) == pytest.approx(math.log(2049) / math.log(2048), rel=1e-7)
    assert kernels.logn_scale(10, 8) == pytest.approx(math.log(11) / math.log(8), rel=1e-7)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("past, t, heads, hd", [(0, 1, 1, 16), (0, 7, 3, 64), (13, 1, 2, 128), (5, 9, 4, 32)])
def test_causal_attention_over_the_cache(isa, past, t, heads, hd):
    rng = np.random.default_rng([past, t, heads, hd])
    capacity = past + t + 3  # rows past the end hold garbage that must not be read
    k = rng.standard_normal((heads, capacity, hd)).astype(np.float32) * 2
    v = rng.standard_normal((heads, capacity, hd)).astype(np.float32)
    k[:, past + t :] = np.nan
    v[:, past + t :] = np.nan
    q = rng.standard_normal((t, heads, hd)).astype(np.float32)
    scale = 1 / math.sqrt(hd)
    got = kernels.attention(q, k, v, past, scale, isa=isa)
    want = np.zeros((t, heads, hd))
    for i in range(t):
        for h in range(heads):
            keys = past + i + 1
            p = npref.softmax(k[h, :keys].astype(np.float64) @ q[i, h] * scale)
            want[i, h] = p @ v[h, :keys]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_silu_gate():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1001).astype(np.float32)
    g = (rng.standard_normal(1001) * 10).astype(np.float32)
    want = a.astype(np.float64) * g / (1 + np.exp(-g.astype(np.float64)))
    np.testing.assert_allclose(kernels.silu_gate(a, g), want, rtol=1e-6, atol=1e-6)


def test_embed_f16_gathers_exact_rows():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((300, 24)).astype(np.float16)
    ids = np.array([0, 299, 7, 7], np.int32)
    np.testing.assert_array_equal(kernels.embed_f16(table, ids), table[ids].astype(np.float32))
    with pytest.raises(ValueError, match="out of range"):
        kernels.embed_f16(table, np.array([300], np.int32))
