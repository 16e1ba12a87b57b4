"""Synthetic bundles: presets, the filler vocabulary, building once and reusing the cache."""

import os

import numpy as np
import pytest

import qwenvl_edge
from qwenvl_edge.bench import synthetic_bundle as sb


def test_presets_and_their_errors():
    real = sb.preset_config("qwen-vl-7b")
    assert (real.num_hidden_layers, real.hidden_size, real.ffn_dim, real.vocab_size) == (32, 4096, 11008, 151936)
    assert (real.visual.layers, real.visual.width) == (48, 1664)
    custom = sb.preset_config("custom", layers=4, vision_layers=6)
    assert (custom.num_hidden_layers, custom.visual.layers, custom.hidden_size) == (4, 6, 4096)
    assert sb.n_ranks(real) == 151643 and sb.n_ranks(sb.preset_config("tiny")) == 4096
    with pytest.raises(ValueError, match="--dims must be one of"):
        sb.preset_config("huge")
    with pytest.raises(ValueError, match="need --dims custom"):
        sb.preset_config("tiny", layers=3)
    with pytest.raises(ValueError, match="--vision-layers must be >= 2"):
        sb.preset_config("custom", vision_layers=1)


def test_the_tiny_bundle_is_built_once_and_answers(tmp_path):
    cfg = sb.preset_config("tiny")
    path = sb.ensure_bundle(cfg, str(tmp_path), progress=False)
    assert sb.ensure_bundle(cfg, str(tmp_path), progress=False) == path
    stamp = os.path.getmtime(os.path.join(path, "decoder.qvw"))
    model = qwenvl_edge.load(path, threads=1, verify=True)
    assert model.bundle.manifest.model.source == "synthetic"
    picture = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    chat = model.chat()
    first = chat.ask("What is it?", images=[picture], max_new_tokens=2)
    second = chat.ask("And now?", max_new_tokens=2)
    assert first.timings.images == 1 and second.timings.reused_tokens > 256
    os.remove(os.path.join(path, "manifest.json"))  # a damaged cache entry is rebuilt
    assert sb.ensure_bundle(cfg, str(tmp_path), progress=False) == path
    assert os.path.getmtime(os.path.join(path, "decoder.qvw")) >= stamp
    assert [e for e in os.listdir(tmp_path) if e.startswith(".")] == []


def test_custom_dims_need_a_depth_and_a_big_build_needs_the_space(tmp_path, monkeypatch):
    import collections
    import shutil

    with pytest.raises(ValueError, match="--dims custom needs --layers"):
        sb.preset_config("custom")
    cfg = sb.preset_config("qwen-vl-7b")
    assert 7.0e9 < sb.bundle_bytes(cfg) < 8.0e9  # the real bundle is 7.8 GB
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100, 99, 10**9))
    with pytest.raises(OSError, match="needs 7.* GB in .* which has 1.0 GB free"):
        sb.ensure_bundle(cfg, str(tmp_path))
    assert os.listdir(tmp_path) == []
