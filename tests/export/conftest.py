"""Fixtures of the exporter tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def int8_vision_cosine_floor() -> float:
    """The least cosine of int8 vs float vision features on the tiny model, on this machine.

    onnxruntime's u8 x s8 GEMM on x86 without VNNI (AVX2, AVX-512 without VNNI) adds pairs of products
    in int16 (vpmaddubsw), which saturates; onnxruntime documents it. The tiny model's narrow layers
    (width 64) hit it often: cosine 0.991-0.993 there against 0.9997 with VNNI or on arm64. At the
    ViT-bigG width it costs little (measured on 2 blocks: 0.99925 against 0.99951 without saturation),
    so the bundle keeps full-range int8 weights, the best on VNNI and dot-product machines."""
    from qwenvl_edge._core import cpu_info

    info = cpu_info()
    features = info["features"]
    saturates = info["arch"] == "x86_64" and not (features["avx512_vnni"] or features["avx_vnni"])
    return 0.985 if saturates else 0.999
