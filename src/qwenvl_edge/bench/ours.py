"""Our engine's figures on a bundle, through the public API (run in a child process, so its peak RSS
is its own): load, vision per image, prefill and decode rates, the two TTFTs a chat user feels; and
(``cold``) the first answer of a new process, as ``qwenvl-edge ask`` gives it.

Every figure is a list of ``repeats`` samples taken after one warm-up (which also faults the mmapped
weights in); the load samples after the first are warm page cache loads; ``decode_step_ms`` holds every
decoded token's time, for its percentiles. ``load_s`` is
``qwenvl_edge.load`` (ready for text), ``vision_open_s`` the onnxruntime session of the vision graph
on top (ready for images), which ``Model.preload_vision`` runs in the background.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from . import roof
from .rss import peak_rss_gib
from .timing import timed

# 20 single-byte tokens in the synthetic vocabulary (bytes, no merges).
QUESTION = "Describe this image."
FOLLOW_UP = "What colour is it?  "


def _picture(seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))


def measure(bundle: str, threads: int, prompt: int, gen: int, repeats: int) -> dict[str, Any]:
    import qwenvl_edge
    from qwenvl_edge.image import preprocess

    out: dict[str, Any] = {"load_s": [], "vision_open_s": []}
    for r in range(repeats + 1):  # load(): manifest, tokenizer, decoder mmap; then the vision session
        start = time.perf_counter()
        model = qwenvl_edge.load(bundle, threads=threads)
        loaded = time.perf_counter()
        model.vision  # noqa: B018 (opens the onnxruntime session; Model.preload_vision overlaps it)
        if r:
            out["load_s"].append(loaded - start)
            out["vision_open_s"].append(time.perf_counter() - loaded)
        if r < repeats:
            del model
            gc.collect()
    out["question_tokens"] = len(model.tokenizer.encode(QUESTION))

    pixels = preprocess(_picture(0), model.image_size)[None]
    out["vision_s"] = timed(lambda: model.vision.encode(pixels), repeats)

    # TTFT: a new chat with a new picture (no cached features) and a 20-token question, then a second
    # question about the same picture (its features and the shared prefix are reused).
    out["ttft_image_s"], out["ttft_followup_s"], out["followup_prefill_tokens"] = [], [], []
    for r in range(repeats + 1):
        chat = model.chat()
        start = time.perf_counter()
        chat.ask(QUESTION, images=[_picture(1 + r)], max_new_tokens=1)
        first = time.perf_counter() - start
        start = time.perf_counter()
        reply = chat.ask(FOLLOW_UP, max_new_tokens=1)
        second = time.perf_counter() - start
        if r:
            out["ttft_image_s"].append(first)
            out["ttft_followup_s"].append(second)
            out["followup_prefill_tokens"].append(reply.timings.prefill_tokens)
            out["followup_vision_passes"] = reply.timings.images - reply.timings.images_cached

    # Prefill and decode on the raw decoder, last: after each decode sample the machine's read bandwidth
    # is measured again with the same threads, so that a decode held to the best reading of the run is
    # held to the bandwidth of that moment (this VM's moves by 20% from minute to minute). The reads
    # allocate 1 GiB: the peak RSS is taken before them. The last chat goes first: each decoder maps
    # the weights file itself, and RSS counts a page once per mapping that touched it (the page cache
    # holds it once), so a second decoder would double the file-backed figure without using more memory.
    del chat, reply
    gc.collect()
    decoder = model.new_session().decoder
    ids = np.random.default_rng(0).integers(0, model.tokenizer.special.n_ranks, prompt).astype(np.int32)
    out["prefill_tok_s"], out["decode_tok_s"], out["decode_step_ms"], out["read_after_decode_gb_s"] = [], [], [], []
    for r in range(repeats + 1):
        decoder.reset()
        start = time.perf_counter()
        token = int(decoder.prefill_ids(ids).reshape(-1).argmax())
        prefill = time.perf_counter() - start
        steps = []
        for _ in range(gen):
            start = time.perf_counter()
            token = int(decoder.step(token).argmax())
            steps.append(time.perf_counter() - start)
        if r:
            out.setdefault("peak_rss_gib", peak_rss_gib())
            out["prefill_tok_s"].append(prompt / prefill)
            out["decode_tok_s"].append(gen / sum(steps))
            out["decode_step_ms"] += [1000 * s for s in steps]
            out["read_after_decode_gb_s"].append(roof.read_bandwidth_gb_s(threads, gib=1.0, passes=3))
    out["isa"], out["threads"] = decoder.isa, decoder.threads
    return out


def cold(bundle: str, threads: int, spawned: float) -> dict[str, Any]:
    """One question with a new picture in this new process, the way ``qwenvl-edge ask`` runs it
    (keep_vision=False). ``spawned``: the parent's time.time() just before it started this process, so
    ``ttft_s`` includes the interpreter's start and the imports, as a CLI user waits for them."""
    imported = time.time()
    import qwenvl_edge

    model = qwenvl_edge.load(bundle, threads=threads, keep_vision=False)
    loaded = time.time()
    reply = model.chat().ask(QUESTION, images=[_picture(1000)], max_new_tokens=1)
    done = time.time()
    t = reply.timings
    return {"start_s": imported - spawned, "load_s": loaded - imported, "vision_s": t.vision_s,
            "prefill_tok_s": t.prefill_tok_s, "prefill_tokens": t.prefill_tokens, "ttft_s": done - spawned}
