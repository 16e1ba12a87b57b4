"""Shared fixtures: tiny random checkpoints written once per session by the project's own generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real Qwen vocabulary lives beside the repository (never committed); QWENVL_VOCAB overrides.
SHARED_VOCAB = Path(os.environ.get("QWENVL_VOCAB", REPO.parent / "shared" / "qwen.tiktoken"))


@pytest.fixture(scope="session")
def real_vocab() -> Path:
    if not SHARED_VOCAB.is_file():
        pytest.skip(f"the real Qwen vocabulary is not at {SHARED_VOCAB} (set QWENVL_VOCAB to its path)")
    return SHARED_VOCAB


def _tiny_vocab():
    """Truncated real vocabulary when available (realistic ids), else the byte vocabulary."""
    return SHARED_VOCAB if SHARED_VOCAB.is_file() else None


@pytest.fixture(scope="session")
def tiny_fp(tmp_path_factory) -> Path:
    """Tiny Qwen-VL-Chat, bfloat16 safetensors, like the float release."""
    from qwenvl_edge.export.tiny import make_tiny

    out = tmp_path_factory.mktemp("tiny-fp")
    make_tiny(out, vocab=_tiny_vocab(), seed=1)
    return out


@pytest.fixture(scope="session")
def tiny_int4(tmp_path_factory) -> Path:
    """The Int4 twin of tiny_fp (same random weights, GPTQ v1 sym g128), like Qwen-VL-Chat-Int4."""
    from qwenvl_edge.export.tiny import make_tiny

    out = tmp_path_factory.mktemp("tiny-int4")
    make_tiny(out, vocab=_tiny_vocab(), seed=1, int4=True)
    return out


@pytest.fixture(scope="session")
def tiny_fp_model(tiny_fp):
    from qwenvl_edge.export.reference_model import QwenVL

    return QwenVL.from_pretrained(tiny_fp)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_int4, tmp_path_factory) -> Path:
    """tiny_int4 exported with the fp32 vision graph and the fp16 head: its decoder weights are the
    checkpoint's exactly, so the runtime can be held to the PyTorch reference token for token."""
    from qwenvl_edge.export.export_model import export
    from qwenvl_edge.export.options import ExportOptions

    out = tmp_path_factory.mktemp("bundle") / "tiny.bundle"
    export(tiny_int4, out, ExportOptions(vision="fp32", progress=False))
    return out


@pytest.fixture(scope="session")
def tiny_base_bundle(tmp_path_factory) -> Path:
    """A base-model bundle (Qwen-VL: chat_format raw, the stop word "Human:"), tiny Int4."""
    from qwenvl_edge.export.export_model import export
    from qwenvl_edge.export.options import ExportOptions
    from qwenvl_edge.export.tiny import make_tiny

    checkpoint = tmp_path_factory.mktemp("tiny-base")
    make_tiny(checkpoint, vocab=_tiny_vocab(), seed=1, int4=True, chat=False)
    out = tmp_path_factory.mktemp("base-bundle") / "base.bundle"
    export(checkpoint, out, ExportOptions(vision="fp32", progress=False))
    return out


@pytest.fixture(scope="session")
def tiny_int4_model(tiny_int4):
    from qwenvl_edge.export.reference_model import QwenVL

    return QwenVL.from_pretrained(tiny_int4)


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> list[str]:
    """Three PNG pictures (blocks of colour) of different sizes and aspect ratios, p0.png..p2.png in
    one folder, as paths."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(640, 480), (300, 500), (90, 60)]):
        blocks = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)
        Image.fromarray(blocks).resize(size, Image.NEAREST).save(root / f"p{i}.png")
        paths.append(str(root / f"p{i}.png"))
    return paths

