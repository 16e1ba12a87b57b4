"""The GPTQ solver (export/gptq.py) and the true-sequential decoder driver around it
(export/quantize_decoder.py; its streaming, refusals and round-to-nearest path are in
test_quantize_decoder.py)."""

import numpy as np
import pytest
import torch

from qwenvl_edge.export import gptq_format, quantize_decoder as qd
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.gptq import Hessian, gptq_quantize, inverse_factor
from qwenvl_edge.export.reference_model import QwenVL
from qwenvl_edge.export.tiny import make_tiny


def activations(rows=3000, k=512, seed=0):
    """Anisotropic, correlated inputs with a few outlier channels, like real activations (with i.i.d.
    isotropic inputs H ~ cI and GPTQ degenerates to round-to-nearest)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 48, generator=g) @ torch.randn(48, k, generator=g) + 0.3 * torch.randn(rows, k, generator=g)
    x[:, torch.randperm(k, generator=g)[:6]] *= 15
    return x


def hessian_of(x):
    h = Hessian(x.shape[-1])
    h.add(x)
    return h.h


def weight(out=256, k=512, seed=1):
    return torch.randn(out, k, generator=torch.Generator().manual_seed(seed)) / k**0.5


def output_mse(x, w, wq):
    return float(((x @ (torch.as_tensor(wq) - w).T) ** 2).mean())


def test_the_hessian_is_a_running_mean_over_tokens():
    x = activations(1000, 128)
    h = Hessian(128)
    for chunk in x.reshape(4, 250, 128).split([1, 3]):  # batches of sequences, [..., K]
        h.add(chunk)
    assert h.n == 1000
    torch.testing.assert_close(h.h, 2 * x.T @ x / 1000, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_output_error_is_at_most_half_of_round_to_nearest(sym, act_order):
    x, w = activations(), weight()
    result = gptq_quantize(w, hessian_of(x), sym=sym, act_order=act_order)
    rtn = gptq_format.dequantize(gptq_format.quantize_linear(w.numpy(), 128, sym=sym))
    ratio = output_mse(x, w, result.weight) / output_mse(x, w, rtn)
    assert ratio <= 0.5, ratio


@pytest.mark.parametrize("sym", [True, False])
def test_an_isotropic_hessian_gives_round_to_nearest_exactly(sym):
    """H = I leaves nothing to feed forward, so GPTQ must reproduce quantize_rtn's grid and levels bit
    for bit: the two share one quantizer."""
    w = weight(64, 256)
    result = gptq_quantize(w, torch.eye(256), sym=sym)
    q, scales, zeros, g_idx = gptq_format.quantize_rtn(w.numpy(), 128, sym=sym)
    for ours, theirs in ((result.q, q), (result.scales, scales), (result.zeros, zeros), (result.g_idx, g_idx)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_the_packed_layer_dequantizes_to_the_weights_the_algorithm_used(sym, act_order):
    w = weight(64, 512, seed=2)
    result = gptq_quantize(w, hessian_of(activations(800)), sym=sym, act_order=act_order)
    for v1 in (True, False):
        deq = gptq_format.dequantize(result.linear(v1=v1), v1=v1)
        np.testing.assert_array_equal(deq, result.weight.numpy())  # exact, not close
    if sym:
        assert np.all(result.zeros == 8)
        assert np.all(result.linear().qzeros.view(np.uint32) == 0x77777777)


def test_act_order_groups_the_inputs_by_decreasing_hessian_diagonal():
    h = hessian_of(activations(800))
    result = gptq_quantize(weight(), h, act_order=True)
    assert np.all(np.bincount(result.g_idx, minlength=4) == 128)  # exactly group_size inputs per group
    assert not np.array_equal(result.g_idx, np.arange(512) // 128)
    by_diagonal = torch.argsort(h.diagonal(), descending=True).numpy()
    for g in range(4):
        assert set(np.flatnonzero(result.g_idx == g)) == set(by_diagonal[128 * g : 128 * (g + 1)])


def test_lazy_blocks_do_not_change_the_result():
    h, w = hessian_of(activations(800)), weight()
    lazy = gptq_quantize(w, h, block_size=128)
    whole = gptq_quantize(w, h, block_size=512)  # one block: every update applied column by column
    assert (lazy.q == whole.q).mean() > 0.999  # up to a float rounding flipping a level
    torch.testing.assert_close(lazy.weight, whole.weight, rtol=0, atol=2 * float(lazy.scales.max()))
    assert lazy.loss == pytest.approx(whole.loss, rel=1e-3)


def test_dead_inputs_are_quantized_to_zero_and_the_hessian_is_left_alone():
    x = activations(800)
    x[:, [7, 300]] = 0
    h = hessian_of(x)
    before = h.clone()
    result = gptq_quantize(weight(32, 512, seed=3), h, act_order=True)
    assert np.all(result.weight[:, [7, 300]].numpy() == 0)
    torch.testing.assert_close(h, before, rtol=0, atol=0)


def test_the_inverse_factor_is_the_upper_cholesky_factor_of_the_damped_inverse():
    h = hessian_of(activations(800, 256)).double()
    h = (h + h.T) / 2  # float32 GEMM rounding leaves x^T x asymmetric in the last bits; inv() reads both halves
    u, damp = inverse_factor(h, 0.01)
    assert damp == 0.01 and torch.equal(u, u.triu())
    damped = h + 0.01 * h.diagonal().mean() * torch.eye(256, dtype=h.dtype)
    want = torch.linalg.cholesky(torch.linalg.inv(damped), upper=True)
    torch.testing.assert_close(u, want, rtol=0, atol=1e-9 * float(want.abs().max()))


def test_a_failing_cholesky_raises_the_damping_then_names_the_layer():
    slightly_indefinite = torch.eye(128) - 1.01 / 128 * torch.ones(128, 128)  # one eigenvalue -0.01
    with pytest.warns(UserWarning, match="h.3.mlp.w2: .* quantized with damp_percent 0.1"):
        result = gptq_quantize(weight(16, 128), slightly_indefinite, damp_percent=0.01, name="h.3.mlp.w2")
    assert result.damp_percent == pytest.approx(0.1)
    with pytest.raises(ValueError, match="h.0.mlp.w1: the Hessian is not positive definite even with damp_percent 10"):
        gptq_quantize(weight(16, 128), -torch.eye(128), name="h.0.mlp.w1")  # damping scaled by a negative mean
    with pytest.raises(ValueError, match="h.0.attn.c_attn: the Hessian holds NaN"):
        gptq_quantize(weight(16, 128), torch.full((128, 128), float("nan")), name="h.0.attn.c_attn")


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="Hessian of shape"):
        gptq_quantize(weight(16, 128), torch.eye(256))
    with pytest.raises(ValueError, match="do not split into groups of 128"):
        gptq_quantize(weight(16, 200), torch.eye(200))
    with pytest.raises(ValueError, match="do not split into groups of 96"):
        gptq_quantize(weight(16, 192), torch.eye(192), group_size=96)  # 96 does not divide the lazy block


# The driver. Embeddings of rank 24 plus noise, shared by calibration and held-out inputs: the tiny
# model's own random token embeddings are nearly isotropic, where GPTQ has nothing to gain.
BASIS = torch.randn(24, 256, generator=torch.Generator().manual_seed(99))


def embeddings(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, t, 24, generator=g) @ BASIS + 0.1 * torch.randn(1, t, 256, generator=g) for t in lengths]


@pytest.fixture(scope="module")
def short_context(tmp_path_factory):
    """A tiny float checkpoint with seq_length 16: 24- and 40-token sequences run dynamic NTK (alpha 3
    and 7) and logn scaling."""
    out = tmp_path_factory.mktemp("tiny-seq16")
    make_tiny(out, seed=3, config={"seq_length": 16})
    return out


def quantized_model(directory, blocks):
    """The reference model with the dequantized linears of the yielded blocks."""
    model = QwenVL.from_pretrained(directory)
    for block in blocks:
        for module, linear in block.linears.items():
            target = model.get_submodule(f"transformer.h.{block.index}.{module}")
            target.weight.data = torch.from_numpy(gptq_format.dequantize(linear))
    return model


def linear_inputs(model, xs):
    """The inputs of each block's c_attn, attn.c_proj, w1 (= w2's) and mlp.c_proj, over xs."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for i, block in enumerate(model.transformer.h):
        for module in ("attn.c_attn", "attn.c_proj", "mlp.w1", "mlp.c_proj"):
            hook = lambda _, args, key=f"{i}.{module}": seen.setdefault(key, []).append(args[0])
            hooks.append(block.get_submodule(module).register_forward_pre_hook(hook))
    with torch.no_grad():
        for x in xs:
            model.transformer(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("keep_gated", [True, False])
def test_each_linear_is_calibrated_on_the_inputs_of_the_fully_quantized_model(short_context, monkeypatch,
                                                                             keep_gated):
    """True-sequential order: every Hessian must be accumulated on exactly what the linear sees in the
    final quantized model (earlier linears quantized, RoPE/NTK/logn of each sequence's length),
    whether the FFN activations are kept between passes or recomputed."""
    if not keep_gated:
        monkeypatch.setattr(qd, "GATED_BYTES", 0)
    recorded: list[tuple[Hessian, torch.Tensor]] = []
    add = Hessian.add
    monkeypatch.setattr(Hessian, "add", lambda self, x: (recorded.append((self, x.clone())), add(self, x)))
    xs = embeddings([40, 24, 40], seed=0)
    blocks = list(qd.quantize_decoder(CheckpointReader(short_context), xs, act_order=True))
    want = linear_inputs(quantized_model(short_context, blocks), xs)

    hessians = list(dict.fromkeys(h for h, _ in recorded))  # in order of first use
    assert len(hessians) == len(want) == 8
    for hessian, key in zip(hessians, want):
        got = torch.cat([x.reshape(-1, x.shape[-1]) for h, x in recorded if h is hessian])
        expected = torch.cat([x.reshape(-1, x.shape[-1]) for x in want[key]])
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=key)


def test_the_quantized_decoder_stays_close_to_the_float_one_on_held_out_inputs(tiny_fp, tiny_fp_model):
    calibration, held_out = embeddings([200] * 4, seed=1), embeddings([64], seed=2)[0]
    with torch.no_grad():
        want = tiny_fp_model.lm_head(tiny_fp_model.transformer(held_out)[0])
    errors, top1 = {}, {}
    for method in ("gptq", "rtn"):
        model = quantized_model(tiny_fp, qd.quantize_decoder(CheckpointReader(tiny_fp), calibration, method=method))
        with torch.no_grad():
            got = model.lm_head(model.transformer(held_out)[0])
        errors[method] = float((got - want).norm() / want.norm())
        top1[method] = float((got.argmax(-1) == want.argmax(-1)).float().mean())
    assert errors["gptq"] < 0.05 and errors["gptq"] < 0.7 * errors["rtn"], errors
    # 64 held-out positions: 0.97 with the truncated real vocabulary, 0.92 with the byte-level one
    # (another vocabulary size draws other random weights), so the bar leaves room for both.
    assert top1["gptq"] >= 0.9, top1


def test_block_stats_report_errors_damping_and_phase_times(tiny_fp):
    first = next(qd.quantize_decoder(CheckpointReader(tiny_fp), embeddings([50, 30], seed=3)))
    layers = first.stats["layers"]
    assert [layer["layer"] for layer in layers] == [f"transformer.h.0.{m}" for m in qd.names.QUANTIZED_LINEARS]
    for layer in layers:
        assert 0 < layer["output_mse"] < layer["output_mse_rtn"] and layer["damp_percent"] == 0.01
        assert layer["gptq_over_rtn"] == pytest.approx(layer["output_mse"] / layer["output_mse_rtn"])
    assert set(first.stats["seconds"]) == {"load", "forward", "hessian", "solve"}


def test_calibration_inputs_are_checked(tiny_fp):
    with pytest.raises(ValueError, match=r"calibration input 1 has shape \[1, 5, 128\]; expected \[1, T, 256\]"):
        next(qd.quantize_decoder(CheckpointReader(tiny_fp), [torch.zeros(1, 5, 256), torch.zeros(1, 5, 128)]))
