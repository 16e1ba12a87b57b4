import math

import numpy as np
import pytest
import torch

import numpy_reference as npref
from qwenvl_edge.export.reference_decoder import apply_rotary, logn_factors, ntk_alpha, rotary_tables
from qwenvl_edge.export.reference_model import QwenVL
from qwenvl_edge.export.tiny import make_tiny


@pytest.fixture(scope="module")
def short_ctx_model(tmp_path_factory):
    """seq_length 16, so that a 40-token prompt runs dynamic NTK and logn scaling."""
    out = tmp_path_factory.mktemp("tiny-seq16")
    make_tiny(out, seed=2, config={"seq_length": 16})
    return QwenVL.from_pretrained(out)


@pytest.mark.parametrize("alpha", [1.0, 3.0, 7.0])
def test_rotate_half_rope_matches_the_formula(alpha):
    x = torch.randn(1, 9, 4, 64, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(100, 109)
    cos, sin = rotary_tables(positions, 64, 10000.0, alpha)
    ours = apply_rotary(x, cos, sin)[0].numpy()
    expected = npref.rope(x[0].double().numpy(), positions.double().numpy(), 10000.0, alpha)
    np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_ntk_alpha_is_1_3_7_by_prefill_length():
    assert [ntk_alpha(n, 2048) for n in (1, 300, 2048, 2049, 4096, 4097, 8192, 8193)] == [1, 1, 1, 3, 3, 7, 7, 15]


def test_logn_is_one_below_seq_length_then_log_base_seq_length():
    f = logn_factors(torch.arange(2045, 2050), 2048).tolist()
    assert f[:3] == [1.0, 1.0, 1.0]  # positions 2045..2047: p + 1 <= 2048
    assert f[3] == pytest.approx(math.log(2049) / math.log(2048))
    assert f[4] == pytest.approx(math.log(2050) / math.log(2048))


def _embeds(model, n, seed):
    ids = torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(seed))  # plain BPE ids
    return ids, model.transformer.wte(ids)


@pytest.mark.parametrize("short_ctx", [False, True])
def test_decoder_matches_the_spec_formulas(tiny_fp_model, short_ctx_model, short_ctx):
    model = short_ctx_model if short_ctx else tiny_fp_model
    ids, embeds = _embeds(model, 40, 1)
    with torch.no_grad():
        logits, cache = model(ids)
    assert cache.ntk_alpha == (7 if short_ctx else 1)  # 40 tokens over 16: log2(2.5) + 1 -> 2^3 - 1
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    expected = npref.decoder_logits(sd, model.cfg, embeds[0].detach().double().numpy())
    rel = np.abs(logits[0].numpy() - expected).max() / np.abs(expected).max()
    assert rel < 1e-5, rel


def test_kv_cached_steps_equal_the_full_forward(tiny_fp_model):
    model = tiny_fp_model
    ids, _ = _embeds(model, 24, 2)
    with torch.no_grad():
        full, _ = model(ids)
        logits, cache = model(ids[:, :17])  # prefill 17
        parts = [logits]
        for t in range(17, 20):  # 3 single steps
            logits, cache = model(ids[:, t : t + 1], cache=cache)
            parts.append(logits)
        logits, cache = model(ids[:, 20:], cache=cache)  # a 4-token block on a non-empty cache
        parts.append(logits)
    assert cache.length == 24
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-4)


def test_truncate_rewinds_the_cache(tiny_fp_model):
    ids, _ = _embeds(tiny_fp_model, 12, 3)
    with torch.no_grad():
        full, _ = tiny_fp_model(ids)
        _, cache = tiny_fp_model(ids)
        cache.truncate(8)
        again, _ = tiny_fp_model(ids[:, 8:], cache=cache)
    torch.testing.assert_close(again, full[:, 8:], rtol=1e-5, atol=1e-4)


def test_ntk_alpha_is_frozen_at_prefill_and_logn_follows_positions(short_ctx_model):
    model = short_ctx_model
    ids, _ = _embeds(model, 20, 4)
    with torch.no_grad():
        full, _ = model(ids)  # prefill 20 > 16: alpha 3
        logits, cache = model(ids[:, :10])  # prefill 10 <= 16: alpha 1 ...
        for t in range(10, 20):  # ... kept while decoding past 16 tokens
            logits, cache = model(ids[:, t : t + 1], cache=cache)
    assert cache.ntk_alpha == 1 and cache.length == 20
    assert not torch.allclose(logits[0, -1], full[0, -1], atol=1e-3)  # the alpha matters
    # With the same alpha (prefill 17 > 16 -> 3) cached decoding equals the full pass, logn included.
    with torch.no_grad():
        logits, cache = model(ids[:, :17])
        steps = [logits]
        for t in range(17, 20):
            logits, cache = model(ids[:, t : t + 1], cache=cache)
            steps.append(logits)
    assert cache.ntk_alpha == 3
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-4)


def test_bf16_model_runs_and_agrees_with_fp32_on_the_top_token(tiny_fp):
    fp32 = QwenVL.from_pretrained(tiny_fp)
    bf16 = QwenVL.from_pretrained(tiny_fp, dtype=torch.bfloat16)
    ids, _ = _embeds(fp32, 16, 5)
    a, _ = fp32(ids)
    b, _ = bf16(ids)
    assert b.dtype == torch.bfloat16  # logits in the model dtype, as in the original
    agree = (a[0].argmax(-1) == b[0].float().argmax(-1)).float().mean().item()
    assert agree >= 0.75
