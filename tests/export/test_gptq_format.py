import numpy as np
import pytest

from qwenvl_edge.export import gptq_format as g


def nibble_dequant(qweight, qzeros, scales, g_idx):
    """Spec 8.4 written out nibble by nibble: W[i, o] = s[g, o] * (q[i, o] - (z_stored[g, o] + 1))."""
    words = qweight.view(np.uint32)
    zw = qzeros.view(np.uint32)
    k, n = words.shape[0] * 8, words.shape[1]
    w = np.zeros((n, k), dtype=np.float32)
    for i in range(k):
        for o in range(n):
            q = (int(words[i // 8, o]) >> (4 * (i % 8))) & 0xF
            z = ((int(zw[g_idx[i], o // 8]) >> (4 * (o % 8))) & 0xF) + 1
            w[o, i] = np.float32(scales[g_idx[i], o]) * (q - z)
    return w


def test_pack_rows_puts_input_8r_plus_j_in_nibble_j():
    q = np.arange(16, dtype=np.uint8).reshape(16, 1) % 16
    words = g.pack_rows(q).view(np.uint32)
    assert words.shape == (2, 1)
    assert words[0, 0] == 0x76543210 and words[1, 0] == 0xFEDCBA98


@pytest.mark.parametrize("shape", [(8, 8), (64, 24), (384, 256)])
def test_pack_unpack_round_trips(shape):
    q = np.random.default_rng(0).integers(0, 16, shape, dtype=np.uint8)
    np.testing.assert_array_equal(g.unpack_rows(g.pack_rows(q)), q)
    np.testing.assert_array_equal(g.unpack_cols(g.pack_cols(q)), q)


def test_sym_zeros_are_stored_as_0x77777777():
    w = np.random.default_rng(1).standard_normal((16, 256)).astype(np.float32)
    layer = g.quantize_linear(w, 128, sym=True)
    assert np.all(layer.qzeros.view(np.uint32) == 0x77777777)
    np.testing.assert_array_equal(layer.g_idx, np.arange(256) // 128)


def test_v1_zero_of_zero_round_trips_word_wise():
    zeros = np.zeros((2, 16), dtype=np.uint8)  # an asym zero of 0 borrows across nibbles in v1
    zeros[1, 3] = 15
    stored = g.pack_zeros(zeros, v1=True)
    np.testing.assert_array_equal(g.unpack_zeros(stored, v1=True), zeros)
    np.testing.assert_array_equal(g.unpack_zeros(g.pack_zeros(zeros, v1=False), v1=False), zeros)


@pytest.mark.parametrize("sym", [True, False])
def test_dequantize_matches_the_nibble_formula_and_is_close_to_the_weight(sym):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 256)).astype(np.float32)
    layer = g.quantize_linear(w, 128, sym=sym)
    deq = g.dequantize(layer)
    if sym:  # no zero of 0, so the nibble-wise reading of v1 holds
        np.testing.assert_array_equal(deq, nibble_dequant(layer.qweight, layer.qzeros, layer.scales, layer.g_idx))
    step = layer.scales.astype(np.float32).max()
    assert np.abs(deq - w).max() <= 0.5 * step * 1.01


def test_act_order_g_idx_groups_permuted_inputs():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 256)).astype(np.float32)
    g_idx = np.empty(256, dtype=np.int32)
    g_idx[rng.permutation(256)] = np.arange(256) // 128
    layer = g.quantize_linear(w, 128, sym=True, g_idx=g_idx)
    np.testing.assert_array_equal(layer.g_idx, g_idx)
    np.testing.assert_array_equal(g.dequantize(layer), nibble_dequant(layer.qweight, layer.qzeros, layer.scales, g_idx))
