"""Image preprocessing of Qwen-VL (spec 3): RGB, Pillow bicubic squash to 448x448, /255, CLIP mean/std.

float32 numpy throughout, so the pixels equal the reference's torchvision pipeline bit for bit with
the same Pillow.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

# OpenAI CLIP constants, channel order R, G, B.
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray


def to_rgb(source: ImageLike) -> Image.Image:
    """A PIL RGB image from a path, encoded bytes, a PIL image or an HxW(x3|4) uint8 array.
    Alpha is dropped without compositing and EXIF orientation is ignored, as in the reference."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ValueError(f"image array must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}")
        image = Image.fromarray(source)
    elif isinstance(source, bytes):
        image = Image.open(io.BytesIO(source))
    else:
        image = Image.open(source)
    return image.convert("RGB")


def preprocess(source: ImageLike, size: int = 448) -> np.ndarray:
    """float32 [3, size, size], CLIP-normalised."""
    image = to_rgb(source).resize((size, size), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)  # [H, W, 3]
    return np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1))
