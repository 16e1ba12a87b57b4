"""The eval tests' model (the tiny bundle, fp32 activations) and pictures to build datasets from."""

import numpy as np
import pytest
from PIL import Image

import qwenvl_edge


@pytest.fixture(scope="session")
def eval_model(tiny_bundle):
    return qwenvl_edge.load(tiny_bundle, threads=2, exact=True)


@pytest.fixture(scope="session")
def pictures(tmp_path_factory):
    """Three small pictures of different sizes, named p0.png..p2.png in one folder."""
    root = tmp_path_factory.mktemp("eval-pictures")
    rng = np.random.default_rng(7)
    for i, (w, h) in enumerate([(64, 48), (40, 80), (90, 60)]):
        blocks = rng.integers(0, 255, (4, 4, 3)).astype(np.uint8)
        Image.fromarray(blocks).resize((w, h), Image.NEAREST).save(root / f"p{i}.png")
    return root
