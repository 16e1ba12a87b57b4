"""The export step of the vision side: the checkpoint's ``transformer.visual.*`` weights -> the bundle's
vision graph (vision_graph.py), checked against the PyTorch reference.

Streams: the graph is written one ViT block at a time straight from the checkpoint's (mapped) files,
and the reference that checks it runs the same way (reference_vision.streamed_vision), so no step holds
the whole ViT-bigG (7.6 GB at float32). The mapped pages are released after every block.

Parity, recorded in the manifest: the features of four varied pictures, graph against reference:
the largest error relative to the largest feature, and the cosine per picture (min and mean).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from . import names
from .checkpoint import CheckpointReader, check_shape
from .progress import bar as progress_bar
from .reference_vision import streamed_vision
from qwenvl_edge.manifest import Preprocess, VisionInfo

from .vision_graph import FILE, VARIANTS, TensorSource, vision_info, write_graph


def checkpoint_tensors(reader: CheckpointReader) -> TensorSource:
    """``tensor(name)``: the checkpoint's ``transformer.visual.<name>``, shape-checked, as float32."""
    shapes = names.visual_shapes(reader.config)

    def tensor(name: str) -> np.ndarray:
        full = names.VISUAL + name
        value = reader.get(full)
        check_shape(reader, full, value, shapes[full])
        return value.to(torch.float32).numpy()

    return tensor


def compare(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """``max_rel_err`` = max |got - want| / max |want|; ``cosine_min``/``cosine_mean``: the cosine of
    each image's flattened features, over the images."""
    a, b = got.reshape(len(got), -1).astype(np.float64), want.reshape(len(want), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"max_rel_err": float(np.abs(a - b).max() / np.abs(b).max()), "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean())}


def encode(path: str, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
    from qwenvl_edge.vision import VisionEncoder

    return VisionEncoder(path, threads=threads, prepack=False).encode(pixels)  # one pass: no repacked copy


def check_images(size: int) -> np.ndarray:
    """Varied preprocessed pictures for the parity checks: flat regions with edges, a gradient, text
    strokes, and noise (the hardest case for int8)."""
    from PIL import Image, ImageDraw

    from qwenvl_edge.image import preprocess

    rng = np.random.default_rng(0)
    blocks = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((640, 480), Image.NEAREST)
    ramp = Image.fromarray(np.linspace(0, 255, 600, dtype=np.float32).astype(np.uint8)[None, :].repeat(400, 0))
    page = Image.new("RGB", (500, 700), (250, 250, 245))
    draw = ImageDraw.Draw(page)
    for row in range(20):
        draw.text((20, 20 + 30 * row), "The quick brown fox 0123456789" [: 10 + row], fill=(10, 10, 10))
    noise = rng.integers(0, 255, (448, 448, 3), dtype=np.uint8)
    return np.stack([preprocess(im, size) for im in (blocks, ramp, page, noise)])


def reference_features(reader: CheckpointReader, pixels: np.ndarray,
                       after_block: Callable[[int], None] | None = None) -> np.ndarray:
    """The PyTorch reference's features at float32, its ViT blocks streamed from the checkpoint."""
    def release(i: int) -> None:
        reader.release()
        if after_block is not None:
            after_block(i)

    model = streamed_vision(reader.config.visual, checkpoint_tensors(reader), release)
    with torch.no_grad():
        return model(torch.from_numpy(pixels)).numpy()


def export_vision(reader: CheckpointReader, out_dir: str, preprocess: Preprocess, variant: str = "int8",
                  progress: bool = False, external: bool | None = None, threads: int | None = None) -> VisionInfo:
    """Write the bundle's vision model into ``out_dir`` and check it; returns the manifest's vision
    record (file names, graph interface, variant, parity figures)."""
    if variant not in VARIANTS:
        raise ValueError(f"vision variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    cfg = reader.config.visual
    pixels = check_images(cfg.image_size)
    with progress_bar(cfg.layers, "vision reference", progress, unit="block") as bar:
        reference = reference_features(reader, pixels, lambda i: bar.update())
    with progress_bar(cfg.layers, f"vision graph ({variant})", progress, unit="block") as bar:
        files = write_graph(cfg, checkpoint_tensors(reader), out_dir, variant, external=external,
                            after_block=lambda i: (reader.release(), bar.update()))
    reader.release()
    parity = compare(encode(os.path.join(out_dir, FILE), pixels, threads), reference)
    return vision_info(cfg, files, variant, preprocess, {f"{k}_vs_reference": v for k, v in parity.items()},
                       len(pixels))
