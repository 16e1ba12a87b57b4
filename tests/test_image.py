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


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes
    with pytest.raises(ValueError, match="is not a regular file"):
        preprocess(str(fifo))
    with pytest.raises(ValueError, match="is not a regular file"):
        preprocess(tmp_path)


def test_pil_and_array_inputs_obey_the_pixel_limit_and_refuse_empty_images(monkeypatch):
    from qwenvl_edge import image

    monkeypatch.setattr(image, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ValueError, match="decompression bomb guard"):
        preprocess(Image.new("RGB", (101, 100)))
    with pytest.raises(ValueError, match="decompression bomb guard"):
        preprocess(np.zeros((100, 101, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        preprocess(Image.new("RGB", (0, 0)))
    with pytest.raises(ValueError, match="empty"):
        preprocess(np.zeros((0, 5, 3), np.uint8))
    assert preprocess(np.zeros((100, 100, 3), np.uint8)).shape == (3, 448, 448)


def test_a_trickling_server_cannot_hold_a_download_past_the_time_bound(monkeypatch):
    """One byte every 0.2 s: each read is quick, the whole is not; refused at the bound, not hung."""
    import http.server
    import threading
    import time

    from qwenvl_edge import image

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:  # the client gave up: what the test wants
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(image, "URL_TIMEOUT_S", 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(ValueError, match="took longer than 1.0 s"):
            image.to_rgb(f"http://127.0.0.1:{server.server_address[1]}/slow.png")
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - start < 5


def test_one_image_is_a_list_of_one():
    from qwenvl_edge.image import as_list

    array = np.zeros((4, 4, 3), np.uint8)
    assert as_list("photo.png") == ["photo.png"] and as_list(b"\x89PNG") == [b"\x89PNG"]
    assert len(as_list(array)) == 1 and as_list(None) == [] and as_list(("a", "b")) == ["a", "b"]


def test_exif_orientation_is_applied_unless_the_image_is_taken_as_stored(tmp_path):
    """A phone photo stored sideways with orientation 6 ("rotate 90 degrees clockwise to view") is seen
    upright; AsStored gives the stored pixels, as the reference does (docs/model.md 3)."""
    from PIL import ImageOps

    from qwenvl_edge.image import AsStored, as_list, reference_name, to_rgb

    stored = np.random.default_rng(2).integers(0, 256, (40, 80, 3), dtype=np.uint8)  # 80 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.png"
    Image.fromarray(stored).save(path, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert upright.shape == (80, 40, 3)
    np.testing.assert_array_equal(np.asarray(to_rgb(path)), upright)
    np.testing.assert_array_equal(preprocess(path.read_bytes()), preprocess(upright))
    with Image.open(path) as opened:  # a PIL image carrying the tag is turned upright too
        np.testing.assert_array_equal(np.asarray(to_rgb(opened)), upright)
    as_stored = to_rgb(AsStored(path))
    np.testing.assert_array_equal(np.asarray(as_stored), stored)
    np.testing.assert_array_equal(np.asarray(to_rgb(as_stored)), stored)  # no tag left to apply twice
    np.testing.assert_array_equal(preprocess(AsStored(str(path))), preprocess(stored))
    assert as_list(AsStored(path)) == [AsStored(path)] and reference_name(AsStored(str(path)), 1) == str(path)
