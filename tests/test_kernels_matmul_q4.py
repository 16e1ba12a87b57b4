"""matmul_q4 and quantize_q8 on every ISA path this machine runs, against numpy."""

import numpy as np
import pytest

from qwenvl_edge._core import kernels
from qwenvl_edge.export import gptq_format
from qwenvl_edge.export.q4_repack import repack

ISAS = kernels.supported_isas()


def make_weight(rng, k, n, sym=True, act_order=False):
    w = rng.standard_normal((n, k)).astype(np.float32)
    g_idx = None
    if act_order:
        g_idx = np.empty(k, dtype=np.int32)
        g_idx[rng.permutation(k)] = np.arange(k) // 128
    layer = gptq_format.quantize_linear(w, 128, sym=sym, g_idx=g_idx)
    blocks, perm = repack(layer)
    return gptq_format.dequantize(layer), blocks, perm  # W_deq [n, k]


def numpy_q8(x):
    """The q8 activation quantization of matmul_q4.h, natural order: (q [m, k], d [m, G], sum [m, G])."""
    m, k = x.shape
    g = x.reshape(m, k // 128, 128)
    d = (np.abs(g).max(-1) / np.float32(127)).astype(np.float32)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.rint(g * inv[..., None]).astype(np.int8)
    return q.reshape(m, k), d, q.astype(np.int32).sum(-1)


def even_odd(q):
    m, k = q.shape
    o = q.reshape(m, k // 8, 8)
    return np.concatenate([o[..., 0::2], o[..., 1::2]], axis=-1).reshape(m, k)


# (5, 256, 272): 17 output tiles, so prefill runs them in chunks of 8 with a remainder (matmul_q4.cpp)
SHAPES = [(1, 128, 16), (1, 384, 112), (3, 256, 48), (7, 384, 80), (9, 128, 32), (33, 256, 16), (5, 256, 272)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("sym, act_order", [(True, False), (False, False), (True, True)])
def test_exact_path_equals_x_times_dequantised_weight(isa, m, k, n, sym, act_order):
    rng = np.random.default_rng([m, k, n, sym, act_order])
    w_deq, blocks, perm = make_weight(rng, k, n, sym, act_order)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    y = kernels.matmul_q4(x, blocks, k, n, perm=perm, bias=bias, mode="exact", isa=isa)
    expected = x.astype(np.float64) @ w_deq.T.astype(np.float64) + bias
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, k", [(1, 128), (5, 384), (17, 256)])
def test_quantize_q8_matches_numpy_bit_for_bit(isa, m, k):
    rng = np.random.default_rng([m, k])
    x = (rng.standard_normal((m, k)) * rng.uniform(0.01, 100, (m, 1))).astype(np.float32)
    x[0, :128] = 0.0  # an all-zero group: d = 0, q = 0
    perm = rng.permutation(k).astype(np.int32)
    q, d, s = kernels.quantize_q8(x, perm=perm, isa=isa)
    eq, ed, es = numpy_q8(x[:, perm])
    np.testing.assert_array_equal(q, even_odd(eq))
    np.testing.assert_array_equal(d, ed)
    np.testing.assert_array_equal(s, es)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("sym, act_order", [(True, False), (False, False), (False, True)])
def test_q8_path_equals_its_integer_formula(isa, m, k, n, sym, act_order):
    rng = np.random.default_rng([m, k, n, sym, act_order, 1])
    w_deq, blocks, perm = make_weight(rng, k, n, sym, act_order)
    x = rng.standard_normal((m, k)).astype(np.float32)
    y = kernels.matmul_q4(x, blocks, k, n, perm=perm, mode="q8", isa=isa)
    # x ~= d * q per group, so y = sum_g d_g * (q_g @ W_deq_g): exact integer-times-weight in float64
    xs = x if perm is None else x[:, perm]
    ws = w_deq if perm is None else w_deq[:, perm]
    q, d, _ = numpy_q8(xs)
    deq_x = (q.reshape(m, -1, 128) * d[..., None]).reshape(m, k).astype(np.float64)
    expected = deq_x @ ws.T.astype(np.float64)
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("sign", [1, -1])
def test_q8_path_is_exact_at_the_largest_products(isa, m, sign):
    """Every nibble 15, zero 0, every activation +-127: the int8 products' largest sums (SIMD paths
    that add them in 16-bit lanes before widening must stay in range)."""
    k, n = 512, 64
    blocks = np.zeros((n // 16, k // 128, kernels.Q4_BLOCK_BYTES), dtype=np.uint8)
    blocks[..., :1024] = 0xFF
    blocks[..., 1024:1056] = np.frombuffer(np.full(16, 0.5, np.float16).tobytes(), np.uint8)
    x = np.full((m, k), sign * 3.0, dtype=np.float32)
    y = kernels.matmul_q4(x, blocks, k, n, mode="q8", isa=isa)
    np.testing.assert_array_equal(y, np.full((m, n), sign * 3.0 * 15 * 0.5 * k, dtype=np.float32))


@pytest.mark.parametrize("isa", ISAS)
def test_q8_path_is_within_tolerance_of_the_exact_path(isa):
    """The stated tolerance of int8 activations: output error <= 1% of the output RMS on Gaussian data."""
    rng = np.random.default_rng(7)
    _, blocks, perm = make_weight(rng, 1024, 256)
    x = rng.standard_normal((4, 1024)).astype(np.float32)
    exact = kernels.matmul_q4(x, blocks, 1024, 256, mode="exact", isa=isa)
    q8 = kernels.matmul_q4(x, blocks, 1024, 256, mode="q8", isa=isa)
    assert np.sqrt(np.mean((q8 - exact) ** 2)) <= 0.01 * np.sqrt(np.mean(exact**2))


def test_every_isa_gives_the_same_q8_result():
    rng = np.random.default_rng(8)
    _, blocks, _ = make_weight(rng, 256, 64, sym=False)
    x = rng.standard_normal((6, 256)).astype(np.float32)
    results = [kernels.matmul_q4(x, blocks, 256, 64, mode="q8", isa=isa) for isa in ISAS]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("mode", ["exact", "q8"])
def test_a_thread_pool_gives_the_single_thread_result(mode):
    rng = np.random.default_rng(10)
    _, blocks, perm = make_weight(rng, 384, 112, act_order=True)  # 7 tiles: one chunk, run by the caller
    x = rng.standard_normal((5, 384)).astype(np.float32)
    one = kernels.matmul_q4(x, blocks, 384, 112, perm=perm, mode=mode)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(kernels.matmul_q4(x, blocks, 384, 112, perm=perm, mode=mode, threads=threads), one)


def test_bad_arguments_raise_value_errors():
    rng = np.random.default_rng(9)
    _, blocks, _ = make_weight(rng, 128, 16)
    x = np.zeros((2, 128), np.float32)
    with pytest.raises(TypeError):
        kernels.matmul_q4(x.astype(np.float64), blocks, 128, 16)  # no silent conversion
    with pytest.raises(ValueError, match="blocks has shape"):
        kernels.matmul_q4(x, blocks, 256, 16)
    with pytest.raises(ValueError, match="multiple of 128"):
        kernels.matmul_q4(x, blocks, 100, 16)
    with pytest.raises(ValueError, match="x must be"):
        kernels.matmul_q4(np.zeros((2, 64), np.float32), blocks, 128, 16)
    with pytest.raises(ValueError, match="bias has shape"):
        kernels.matmul_q4(x, blocks, 128, 16, bias=np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="not a permutation"):
        kernels.matmul_q4(x, blocks, 128, 16, perm=np.zeros(128, np.int32))
    with pytest.raises(ValueError, match="mode"):
        kernels.matmul_q4(x, blocks, 128, 16, mode="fast")
    with pytest.raises(ValueError, match="threads must be in 1..256"):
        kernels.matmul_q4(x, blocks, 128, 16, threads=0)
    with pytest.raises(ValueError, match="unknown ISA path 'sse9'"):
        kernels.matmul_q4(x, blocks, 128, 16, isa="sse9")
    with pytest.raises(TypeError):
        kernels.matmul_q4(np.asfortranarray(np.zeros((2, 128), np.float32)), blocks, 128, 16)
