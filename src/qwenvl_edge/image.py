"""Image preprocessing of Qwen-VL (docs/model.md 3): RGB, Pillow bicubic squash to 448x448, /255, CLIP mean/std.

float32 numpy throughout, so the pixels equal the reference's torchvision pipeline bit for bit with
the same Pillow. One deliberate difference: an image whose EXIF orientation tag says it is stored
sideways (a phone photo) is turned upright first, as a viewer shows it; the reference ignores the tag
and sees the picture sideways. ``AsStored(source)`` keeps the stored orientation.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import time
import warnings
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

# Bumped whenever this module changes its output: bundles record it and image-feature caches key on it.
# 2: EXIF orientation applied.
PREPROCESS_VERSION = 2
# OpenAI CLIP constants, channel order R, G, B.
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class AsStored:
    """An image to take as its pixels are stored, its EXIF orientation ignored (the reference's way):
    ``chat.ask("...", images=AsStored("photo.jpg"))``."""

    source: str | os.PathLike | bytes | Image.Image | np.ndarray


ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | AsStored
# Pillow's own decompression-bomb threshold (89.5 Mpx); checked on the header, before decoding.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
URL_TIMEOUT_S = 20
MAX_URL_BYTES = 64 << 20


def reference_name(source: ImageLike, n: int) -> str:
    """What the prompt's image span says for ``source``: the path or URL as given (like the reference),
    else ``image-N.png`` for the n-th image. The features fill the span's slots whatever it says."""
    if isinstance(source, AsStored):
        return reference_name(source.source, n)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"image-{n}.png"


def as_list(images: ImageLike | Sequence[ImageLike] | None) -> list[ImageLike]:
    """``images`` as a list: a single image (a path, URL, bytes, PIL image or array) is a list of one,
    so ``ask("hi", images="photo.png")`` means one picture, not one per character."""
    if images is None:
        return []
    if isinstance(images, (str, os.PathLike, bytes, Image.Image, np.ndarray, AsStored)):
        return [images]
    return list(images)


def _fetch(url: str) -> bytes:
    """The body of an http(s) URL: at most MAX_URL_BYTES, all of it within URL_TIMEOUT_S."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + URL_TIMEOUT_S
    chunks, size = [], 0
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            while chunk := response.read1(1 << 16):  # what arrived, so a trickling server cannot stall us
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_URL_BYTES:
                    raise ValueError(f"image {url} is larger than {MAX_URL_BYTES >> 20} MB")
                if time.monotonic() > deadline:
                    raise ValueError(f"image {url} took longer than {URL_TIMEOUT_S} s to download")
    except (urllib.error.URLError, OSError) as e:
        raise ValueError(f"cannot fetch image {url}: {getattr(e, 'reason', e)}") from e
    return b"".join(chunks)


def _checked(image: Image.Image, name: str) -> Image.Image:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{name} is {width}x{height}: more than {MAX_PIXELS} pixels (decompression bomb guard)")
    if width < 1 or height < 1:
        raise ValueError(f"{name} is empty ({width}x{height})")
    return image


def _name(source: object) -> str:
    if isinstance(source, bytes):
        return f"image bytes ({len(source)} bytes)"
    return f"image {os.fspath(source)!r}" if isinstance(source, (str, os.PathLike)) else "image"


def _rgb(image: Image.Image, upright: bool) -> Image.Image:
    """RGB pixels as meant: turned upright when ``upright``, and with no orientation tag left that a
    second pass (or a viewer) would apply again."""
    out = (ImageOps.exif_transpose(image) if upright else image).convert("RGB")
    out.info.clear()  # convert() copies the source's EXIF and XMP, where the orientation tag lives
    return out


def to_rgb(source: ImageLike) -> Image.Image:
    """A PIL RGB image from a path, an http(s) URL, encoded bytes, a PIL image or an HxW(x3|4) uint8
    array, turned upright per its EXIF orientation unless wrapped in AsStored. As in the reference:
    alpha is dropped without compositing, the first frame of an animation is used, and other modes go
    through Pillow's convert("RGB") (CMYK converts; 16-bit greys clip at 255 exactly like the
    reference). Anything that is not a decodable image of at most MAX_PIXELS pixels is a ValueError
    naming the problem."""
    upright = not isinstance(source, AsStored)
    if isinstance(source, AsStored):
        source = source.source
    if isinstance(source, Image.Image):
        return _rgb(_checked(source, "image"), upright)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image array must be uint8 HxW or HxWx(1|3|4), got {source.dtype} {source.shape}")
        if source.shape[0] * source.shape[1] > MAX_PIXELS or 0 in source.shape[:2]:
            raise ValueError(f"image array of {source.shape[1]}x{source.shape[0]} pixels: empty or more than "
                             f"{MAX_PIXELS} (decompression bomb guard)")
        return Image.fromarray(source.squeeze(2) if source.ndim == 3 and source.shape[2] == 1 else source).convert("RGB")
    name = _name(source)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        source = _fetch(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            mode = os.stat(source).st_mode
        except FileNotFoundError:
            raise ValueError(f"{name}: no such file") from None
        except OSError as e:
            raise ValueError(f"{name}: {e.strerror}") from e
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            raise ValueError(f"{name} is not a regular file")
    elif not isinstance(source, bytes):
        raise TypeError(f"an image must be a path, URL, bytes, PIL image or numpy array, not {type(source).__name__}")
    try:
        with warnings.catch_warnings():  # Pillow warns between 1x and 2x its limit: we refuse instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        with opened as image:
            return _rgb(_checked(image, name), upright)
    except FileNotFoundError as e:
        raise ValueError(f"{name}: no such file") from e
    except Image.DecompressionBombError as e:
        raise ValueError(f"{name} is too large: {e}") from e
    except (OSError, SyntaxError) as e:  # unidentified, truncated, corrupt
        raise ValueError(f"cannot decode {name}: {e}") from e


def preprocess(source: ImageLike, size: int = 448) -> np.ndarray:
    """float32 [3, size, size], CLIP-normalised."""
    image = to_rgb(source).resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)  # [H, W, 3]
    return np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1))
