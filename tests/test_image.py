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


def png(image: Image.Image, **kwargs) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, "PNG", **kwargs)
    return out.getvalue()


def test_unusual_but_valid_images_are_read_like_the_reference(tmp_path):
    assert preprocess(png(Image.new("RGB", (1, 1), (10, 20, 30)))).shape == (3, 448, 448)
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # red in CMYK
    np.testing.assert_array_equal(preprocess(cmyk), preprocess(cmyk.convert("RGB")))
    deep = Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16))  # 16-bit grey: Pillow clips, like the reference
    np.testing.assert_array_equal(preprocess(png(deep)), preprocess(deep.convert("RGB")))
    frames = [Image.new("RGB", (30, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    first = preprocess(tmp_path / "a.gif")
    assert first[0].mean() > first[2].mean()  # the first (red) frame


@pytest.mark.parametrize("make, message", [
    (lambda p: b"not an image", "cannot decode image bytes"),
    (lambda p: png(Image.new("RGB", (100, 100)))[:80], "cannot decode image bytes"),
    (lambda p: str(p / "absent.jpg"), "absent.jpg'?: no such file"),
    (lambda p: png(Image.new("1", (20000, 20000))), "too large: .*decompression bomb"),
    (lambda p: png(Image.new("1", (10000, 10000))), "10000x10000: more than .* pixels"),
    (lambda p: np.zeros((4, 4, 2), np.uint8), "HxWx"),
])
def test_bad_images_are_clear_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        preprocess(make(tmp_path))


def test_offline_url_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot fetch image http://127.0.0.1:9/x.png"):
        preprocess("http://127.0.0.1:9/x.png")
