import numpy as np
import pytest
from PIL import Image

from qwenvl_edge.image import MEAN, STD, preprocess


def test_preprocess_is_the_clip_normalisation_of_the_bicubic_squash():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)  # non-square: squashed, not cropped
    out = preprocess(rgb, 448)
    assert out.shape == (3, 448, 448) and out.dtype == np.float32
    resized = np.asarray(Image.fromarray(rgb).resize((448, 448), Image.BICUBIC), dtype=np.float32)
    expected = ((resized / np.float32(255)) - MEAN) / STD
    np.testing.assert_array_equal(out, expected.transpose(2, 0, 1))


def test_alpha_is_dropped_without_compositing():
    rgba = np.zeros((448, 448, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent: the reference still sees red
    out = preprocess(rgba)
    np.testing.assert_allclose(out[0], (200 / 255 - MEAN[0]) / STD[0], rtol=1e-6)


def test_paths_bytes_and_arrays_agree(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    from_path = preprocess(tmp_path / "x.png")
    np.testing.assert_array_equal(from_path, preprocess((tmp_path / "x.png").read_bytes()))
    np.testing.assert_array_equal(from_path, preprocess(rgb))


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((8, 8, 3), dtype=np.float32))
