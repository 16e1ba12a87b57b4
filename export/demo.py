"""``qwenvl-edge demo``: a tiny random Qwen-VL, built on the spot and run end to end in seconds.

At this stage of the project the run goes through the PyTorch reference: write a tiny checkpoint in
the Hugging Face layout, load it, draw a picture, preprocess and encode it, build a base-model
captioning prompt ``<img>path</img>Describe the image in English:`` and decode greedily. The weights
are random, so the text is noise; the timings and the plumbing are the point.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from PIL import Image, ImageDraw

from qwenvl_edge.image import preprocess
from qwenvl_edge.vocab import IMAGE_SLOTS, SpecialIds, encoding, read_ranks

from .reference_model import QwenVL
from .tiny import make_tiny


def draw_picture(path: str) -> None:
    """A 640x480 scene: sky, grass, a red box; non-square so the squash resize is exercised."""
    image = Image.new("RGB", (640, 480), (120, 170, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 640, 480), fill=(60, 150, 60))
    draw.rectangle((250, 200, 390, 340), fill=(210, 40, 40))
    image.save(path)


def prompt_ids(ranks: dict[bytes, int], image_path: str, text: str) -> list[int]:
    """<img> + the path's bytes as ids + <imgpad> up to 256 slots + </img>, then the text's BPE ids."""
    special = SpecialIds(len(ranks))
    path = image_path.encode("utf-8")
    slots = list(path) + [special.img_pad] * (IMAGE_SLOTS - len(path))
    return [special.img_start] + slots + [special.img_end] + encoding(ranks).encode_ordinary(text)


def run(workdir: str | None = None, vocab: str | None = None, max_new_tokens: int = 16) -> list[int]:
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        return result

    with tempfile.TemporaryDirectory(prefix="qwenvl-edge-demo-") as tmp:
        root = workdir or tmp
        checkpoint = os.path.join(root, "tiny-qwen-vl")
        cfg = timed("write tiny checkpoint", make_tiny, checkpoint, vocab=vocab)
        model = timed("load reference", QwenVL.from_pretrained, checkpoint)
        picture = os.path.join(root, "demo.png")
        draw_picture(picture)
        pixels = timed("preprocess image", preprocess, picture, cfg.visual.image_size)
        features = timed("vision encoder", model.encode_images, torch.from_numpy(pixels)[None])
        ranks = read_ranks(os.path.join(checkpoint, "qwen.tiktoken"))
        ids = prompt_ids(ranks, "demo.png", "Describe the image in English:")
        special = SpecialIds(len(ranks))
        new = timed("greedy decode", model.greedy, torch.tensor([ids]), features, max_new_tokens,
                    (special.endoftext,))
        text = encoding(ranks).decode([t for t in new if t < special.n_ranks], errors="replace")

    print(f"tiny Qwen-VL: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, ViT width "
          f"{cfg.visual.width} x {cfg.visual.layers} blocks, vocab {cfg.vocab_size}")
    print(f"prompt: {len(ids)} tokens (one image = {IMAGE_SLOTS + 2}); generated {len(new)} tokens: {new}")
    print(f"text (random weights): {text!r}")
    for name, seconds in timings.items():
        print(f"  {name:<22} {seconds * 1000:8.1f} ms")
    decode_s = timings["greedy decode"]
    print(f"  {'tokens/s (reference)':<22} {len(new) / decode_s:8.1f}")
    return new
