"""The decoder's small kernel families (RMSNorm, RoPE, logn, attention over fp32 and fp16 caches,
softmax, SiLU gate, fp16 conversion, embedding) against numpy on fresh random data, awkward shapes,
and every ISA path of the machine."""

import math

import numpy as np
import pytest

import numpy_reference as npref
from qwenvl_edge._core import kernels

ISAS = kernels.supported_isas()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("rows, dim", [(1, 1), (3, 7), (2, 23), (5, 256), (2, 4096)])
def test_rms_norm(isa, rows, dim):
    rng = np.random.default_rng([rows, dim])
    x = (rng.standard_normal((rows, dim)) * 3).astype(np.float32)
    w = rng.standard_normal(dim).astype(np.float32)
    got = kernels.rms_norm(x, w, 1e-6, isa=isa)
    np.testing.assert_allclose(got, npref.rms_norm(x.astype(np.float64), w), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("start, t, hd, alpha",
                         [(0, 1, 16, 1.0), (5, 9, 64, 1.0), (3, 2, 42, 1.0), (2040, 20, 128, 3.0), (9000, 3, 128, 7.0)])
def test_rope(isa, start, t, hd, alpha):
    rng = np.random.default_rng([start, t, hd])
    x = rng.standard_normal((t, 3, hd)).astype(np.float32)
    cos, sin = kernels.rope_tables(start, t, hd, 10000.0, alpha)
    got = kernels.apply_rope(x, cos, sin, isa=isa)
    want = npref.rope(x.astype(np.float64), np.arange(start, start + t, dtype=np.float64), 10000.0, alpha)
    # float32 angles of large positions carry ~position * 2^-24 rad of error, as in the original
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(start + t, 64))


def test_logn_scale():
    assert kernels.logn_scale(2047, 2048) == 1.0
    assert kernels.logn_scale(2048, 2048) == pytest.approx(math.log(2049) / math.log(2048), rel=1e-7)
    assert kernels.logn_scale(10, 8) == pytest.approx(math.log(11) / math.log(8), rel=1e-7)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cache", [np.float32, np.float16])
# head_dim 48, 80, 144, 192: every SIMD path's column-chunk rest; 300 keys: the prefetch ahead
@pytest.mark.parametrize("past, t, heads, hd", [(0, 1, 1, 16), (0, 7, 3, 64), (13, 1, 2, 128), (5, 9, 4, 32),
                                                (3, 2, 2, 48), (20, 1, 2, 80), (7, 3, 1, 144), (300, 2, 2, 192)])
def test_causal_attention_over_the_cache(isa, cache, past, t, heads, hd):
    rng = np.random.default_rng([past, t, heads, hd])
    capacity = past + t + 3  # rows past the end hold garbage that must not be read
    k = (rng.standard_normal((heads, capacity, hd)) * 2).astype(cache)
    v = rng.standard_normal((heads, capacity, hd)).astype(cache)
    k[:, past + t :] = np.nan
    v[:, past + t :] = np.nan
    q = rng.standard_normal((t, heads, hd)).astype(np.float32)
    scale = 1 / math.sqrt(hd)
    got = kernels.attention(q, k, v, past, scale, isa=isa)
    want = np.zeros((t, heads, hd))
    for i in range(t):
        for h in range(heads):
            keys = past + i + 1  # the reference reads the very fp16 values, upcast: only the sums may differ
            p = npref.softmax(k[h, :keys].astype(np.float64) @ q[i, h] * scale)
            want[i, h] = p @ v[h, :keys].astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_attention_refuses_mixed_or_wrong_caches():
    q = np.zeros((1, 1, 16), np.float32)
    k32, k16 = np.zeros((1, 2, 16), np.float32), np.zeros((1, 2, 16), np.float16)
    with pytest.raises(TypeError, match="both float32 or both float16"):
        kernels.attention(q, k32, k16, 0, 1.0)
    with pytest.raises(TypeError, match="both float32 or both float16"):
        kernels.attention(q, k32.astype(np.float64), k32.astype(np.float64), 0, 1.0)
    with pytest.raises(ValueError, match="heads, capacity, head_dim"):
        kernels.attention(q, k32, np.zeros((1, 3, 16), np.float32), 0, 1.0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 7, 16, 1001])
def test_silu_gate(isa, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 10).astype(np.float32)
    g[: min(n, 4)] = [-100.0, 100.0, 0.0, -87.5][: min(n, 4)]  # the clamps of the SIMD exp
    want = a.astype(np.float64) * g / (1 + np.exp(-g.astype(np.float64)))
    np.testing.assert_allclose(kernels.silu_gate(a, g, isa=isa), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n, spread", [(1, 1.0), (5, 3.0), (16, 30.0), (333, 10.0), (1000, 200.0)])
def test_softmax(isa, n, spread):
    s = (np.random.default_rng([n, int(spread)]).standard_normal(n) * spread).astype(np.float32)
    got = kernels.softmax(s, isa=isa)
    np.testing.assert_allclose(got, npref.softmax(s.astype(np.float64)), rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("isa", ISAS)
def test_to_f16_rounds_like_numpy(isa):
    rng = np.random.default_rng(3)
    special = [0.0, -0.0, 65504.0, 65519.99, 65520.0, -1e9, np.inf, -np.inf, 6e-8, 2.98e-8, 2.99e-8, 6.1e-5,
               6.097e-5, 1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11)]
    x = np.concatenate([special, rng.standard_normal(997) * 10.0 ** rng.integers(-9, 5, 997)]).astype(np.float32)
    got = kernels.to_f16(x, isa=isa)
    assert got.dtype == np.float16
    with np.errstate(over="ignore"):  # the values past 65504 overflow to inf, as they must
        want = x.astype(np.float16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    nan = kernels.to_f16(np.array([np.nan], np.float32), isa=isa)
    assert np.isnan(nan[0])


def test_embed_f16_gathers_exact_rows():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((300, 24)).astype(np.float16)
    ids = np.array([0, 299, 7, 7], np.int32)
    np.testing.assert_array_equal(kernels.embed_f16(table, ids), table[ids].astype(np.float32))
    with pytest.raises(ValueError, match="out of range"):
        kernels.embed_f16(table, np.array([300], np.int32))
