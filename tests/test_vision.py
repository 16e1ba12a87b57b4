"""The runtime vision encoder's checks."""

import numpy as np
import pytest

from qwenvl_edge.errors import FormatError
from qwenvl_edge.vision import VisionEncoder


@pytest.fixture(scope="module")
def encoder(tiny_bundle):
    return VisionEncoder(tiny_bundle / "vision.onnx", threads=1)


def test_shapes(encoder):
    out = encoder.encode(np.zeros((2, 3, 448, 448), np.float32))
    assert out.shape == (2, 256, 256) and out.dtype == np.float32 and encoder.image_size == 448


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((1, 3, 448, 448), np.float64), "float32"),
    (np.zeros((3, 448, 448), np.float32), r"\[N, 3, 448, 448\]"),
    (np.zeros((1, 3, 224, 224), np.float32), r"\[N, 3, 448, 448\]"),
    (np.zeros((0, 3, 448, 448), np.float32), "N >= 1"),
    (np.full((1, 3, 448, 448), np.nan, np.float32), "NaN"),
    ([[0.0]], "float32"),
])
def test_bad_pixels(encoder, pixels, message):
    with pytest.raises(ValueError, match=message):
        encoder.encode(pixels)


def test_missing_and_corrupt_models(tmp_path):
    with pytest.raises(FormatError, match="missing"):
        VisionEncoder(tmp_path / "absent.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(FormatError, match="cannot load the vision model"):
        VisionEncoder(tmp_path / "bad.onnx")
