"""The GPTQ solver: beats round-to-nearest on correlated inputs, packs exactly, handles act-order,
dead inputs and singular Hessians."""

import numpy as np
import pytest
import torch

from qwenvl_edge.export import gptq_format
from qwenvl_edge.export.gptq import Hessian, gptq_quantize


def activations(rows=3000, k=512, seed=0):
    """Anisotropic, correlated inputs with a few outlier channels, like real activations (with i.i.d.
    isotropic inputs H ~ cI and GPTQ degenerates to round-to-nearest)."""
    g = torch.Generator().manual_seed(seed)
    low_rank = torch.randn(rows, 48, generator=g) @ torch.randn(48, k, generator=g)
    x = low_rank + 0.3 * torch.randn(rows, k, generator=g)
    x[:, torch.randperm(k, generator=g)[:6]] *= 15
    return x


def output_error(x, w, wq):
    return float(((x @ (torch.as_tensor(wq) - w).T) ** 2).mean())


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_halves_the_output_error_of_rtn(sym, act_order):
    x = activations()
    w = torch.randn(256, 512, generator=torch.Generator().manual_seed(1)) / 512**0.5
    h = Hessian(512)
    for chunk in x.split(700):  # the running mean over batches equals the one-shot Hessian
        h.add(chunk)
    torch.testing.assert_close(h.h, 2 * x.T @ x / len(x), rtol=1e-4, atol=1e-3)
    result = gptq_quantize(w, h.h, sym=sym, act_order=act_order)
    rtn = gptq_format.dequantize(gptq_format.quantize_linear(w.numpy(), 128, sym=sym))
    ratio = output_error(x, w, result.dequantized()) / output_error(x, w, rtn)
    assert ratio <= 0.5, ratio


def test_packing_round_trips_exactly_and_sym_zeros_are_8():
    x = activations(800)
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(2))
    h = Hessian(512)
    h.add(x)
    result = gptq_quantize(w, h.h, sym=True, act_order=True)
    layer = result.linear(v1=True)
    np.testing.assert_array_equal(gptq_format.dequantize(layer, v1=True), result.dequantized())
    assert np.all(result.zeros == 8)
    assert np.all(np.bincount(result.g_idx, minlength=4) == 128)  # exactly 128 inputs per group
    assert not np.array_equal(result.g_idx, np.arange(512) // 128)  # act-order permutes


def test_dead_inputs_are_zeroed():
    x = activations(800)
    x[:, 7] = 0
    h = Hessian(512)
    h.add(x)
    w = torch.randn(32, 512, generator=torch.Generator().manual_seed(3))
    result = gptq_quantize(w, h.h)
    assert np.all(result.dequantized()[:, 7] == 0)


def test_a_singular_hessian_gets_more_damping_then_a_clear_error():
    h = -torch.eye(128)  # negative definite: damping by a fraction of mean(diag) only makes it worse
    with pytest.raises(ValueError, match="h.0.mlp.w1: the Hessian is not positive definite"):
        gptq_quantize(torch.randn(16, 128), h, name="h.0.mlp.w1")
    slightly_indefinite = torch.eye(128) - 1.01 / 128 * torch.ones(128, 128)  # one eigenvalue -0.01
    with pytest.warns(UserWarning, match="only with damp_percent 0.1"):
        gptq_quantize(torch.randn(16, 128), slightly_indefinite, damp_percent=0.01)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="Hessian of shape"):
        gptq_quantize(torch.randn(16, 128), torch.eye(256))
    with pytest.raises(ValueError, match="groups of 128"):
        gptq_quantize(torch.randn(16, 200), torch.eye(200))
