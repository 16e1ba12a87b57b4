"""The work counts a phase's roof fraction is computed from, against hand counts and docs/model.md 9."""

import pytest

from qwenvl_edge.bench import work
from qwenvl_edge.bench.synthetic_bundle import preset_config


def test_real_dims_match_the_published_figures():
    cfg = preset_config("qwen-vl-7b")
    assert work.vision_flops(cfg.visual) == pytest.approx(4.1e12, rel=0.05)  # docs/model.md 9: ~4.2 TFLOP
    assert work.prefill_flops_per_token(cfg, 300) == pytest.approx(13.4e9, rel=0.05)  # ~13.4 GFLOP per token
    # 4-bit tiles (1,072 bytes per 16 x 128) of 32 blocks + the fp16 head + one fp16 embedding row
    tiles = 32 * (3 * 4096 * 4096 + 4096 * 4096 + 3 * 4096 * 11008) // 2048 * 1072
    assert work.decode_bytes_per_token(cfg) == tiles + 151936 * 4096 * 2 + 2 * 4096


def test_tiny_prefill_by_hand():
    cfg = preset_config("tiny")
    d, f, layers, v = 256, 384, 2, cfg.vocab_size
    by_hand = layers * (2 * (4 * d * d + 3 * d * f) + 4 * d * 5 / 2) + 2 * d * v / 4
    assert work.prefill_flops_per_token(cfg, 4) == pytest.approx(by_hand)
