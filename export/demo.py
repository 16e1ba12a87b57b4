"""``qwenvl-edge demo``: the whole pipeline on a tiny random Qwen-VL-Chat, built on the spot, in seconds.

Write a tiny checkpoint in the Hugging Face layout, export it to a bundle (vision ONNX, GPTQ decoder
on the built-in calibration set), load the bundle with the runtime, ask a question about a picture
(streamed), ask a second one about the same picture (its features come from the cache, the
conversation from the KV cache), ground an expression and draw the boxes. The weights are random, so
the words are noise and boxes appear only by chance; the plumbing and the timings are the point.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from PIL import Image, ImageDraw

import qwenvl_edge
from qwenvl_edge import boxes

from .export_model import export
from .options import ExportOptions
from .tiny import make_tiny


def draw_picture(path: str) -> None:
    """A 640x480 scene: sky, grass, a red box; non-square so the squash resize is exercised."""
    image = Image.new("RGB", (640, 480), (120, 170, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 640, 480), fill=(60, 150, 60))
    draw.rectangle((250, 200, 390, 340), fill=(210, 40, 40))
    image.save(path)


def run(workdir: str | None = None, vocab: str | None = None, max_new_tokens: int = 24) -> dict:
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        return result

    with tempfile.TemporaryDirectory(prefix="qwenvl-edge-demo-") as tmp:
        root = workdir or tmp
        checkpoint, bundle = os.path.join(root, "tiny-qwen-vl-chat"), os.path.join(root, "tiny.bundle")
        cfg = timed("write tiny checkpoint", make_tiny, checkpoint, vocab=vocab)
        manifest = timed("export bundle", export, checkpoint, bundle, ExportOptions(overwrite=True, progress=False))
        model = timed("load bundle", qwenvl_edge.load, bundle)
        picture = os.path.join(root, "demo.png")
        draw_picture(picture)

        print("random weights: the answers are noise; the pipeline and the timings are the point")
        print(f"tiny Qwen-VL-Chat: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, ViT width "
              f"{cfg.visual.width} x {cfg.visual.layers} blocks, vocab {cfg.vocab_size}; bundle "
              f"{sum(f.bytes for f in manifest.files.values()) / 1e6:.1f} MB")
        chat = model.chat()
        print("Q: What is in the picture?\nA: ", end="")
        stream = chat.stream("What is in the picture?", [picture], temperature=0, max_new_tokens=max_new_tokens)
        for delta in stream:
            print(delta, end="", flush=True)
        first = stream.reply
        print(f"\n   ({first.finish_reason}; {len(first.token_ids)} tokens)")
        second = chat.ask("Where is the red box?", temperature=0, max_new_tokens=max_new_tokens)
        print(f"Q: Where is the red box?\nA: {second.text}")
        found = timed("ground", model.ground, picture, "the red box")
        with Image.open(picture) as opened:
            width, height = opened.size
            boxes.draw(opened, found).save(os.path.join(root, "demo-boxes.png"))
        where = ", ".join(f"{tuple(round(v) for v in b.pixels(width, height))} px" for b in found)
        print(f"ground 'the red box': {len(found)} box(es) {where or '(random weights: none expected)'}")

    for name, seconds in timings.items():
        print(f"  {name:<24} {seconds * 1000:9.1f} ms")
    for label, reply in (("turn 1", first), ("turn 2", second)):
        t = reply.timings
        print(f"  {label}: vision {t.vision_s * 1000:.1f} ms ({t.images_cached}/{t.images} image(s) from the cache), "
              f"prefill {t.prefill_tokens} tokens at {t.prefill_tok_s:.0f} tok/s ({t.reused_tokens} reused), "
              f"decode {t.decode_tokens} tokens at {t.decode_tok_s:.0f} tok/s")
    sys.stdout.flush()
    return {"first": first, "second": second, "boxes": found, "timings": timings}
