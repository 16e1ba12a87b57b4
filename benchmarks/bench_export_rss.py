"""Peak RSS and time of `qwenvl-edge export` (GPTQ on the built-in calibration set) for a checkpoint
with the Qwen-7B decoder's dims (hidden 4096, 32 heads x 128, FFN 11008, vocab 151936), random fp16
weights, in the Hugging Face layout.

    python benchmarks/bench_export_rss.py [--layers 1 2] [--vocab ../shared/qwen.tiktoken]

Fewer than 32 layers, extrapolated: the export streams the decoder block by block, so peak RSS should
not grow with the layer count (two counts show it) and the time grows by a constant per block. The ViT
here is small (width 64, 2 blocks; the adapter at the real 4096 output width), so this measures the
decoder's export; the vision export of the real ViT-bigG is bounded by its fp32 weights (7.6 GB) plus
the exporter's copy, measured separately. Each export runs in a child process; its peak RSS is the
child's ru_maxrss. Appends a JSON line to benchmarks/results/export_rss.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from qwenvl_edge.export import names
from qwenvl_edge.export.config import QwenVLConfig, VisualConfig
from qwenvl_edge.export.reference_vision import sincos_2d_table
from qwenvl_edge.export.tiny import tiny_ranks, write_checkpoint
from qwenvl_edge.vocab import SpecialIds

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "export_rss.jsonl")


def checkpoint(path: str, layers: int, vocab: str | None) -> None:
    if os.path.isfile(os.path.join(path, "config.json")):
        return
    ranks = tiny_ranks(vocab, n_ranks=151643) if vocab else tiny_ranks(None)
    special = SpecialIds(len(ranks))
    visual = VisualConfig(width=64, layers=2, heads=4, output_dim=4096, image_start_id=special.img_start)
    cfg = QwenVLConfig(vocab_size=151936, num_hidden_layers=layers, visual=visual)
    rng = np.random.default_rng(0)
    state = {}
    for name, shape in names.float_shapes(cfg).items():
        if name.endswith("attn_pool.pos_embed"):
            state[name] = torch.from_numpy(sincos_2d_table(4096, 16))
        elif len(shape) == 1:
            state[name] = torch.from_numpy(1 + 0.1 * rng.standard_normal(shape, dtype=np.float32))
        else:
            fan_in = shape[0] if name.endswith(".proj") else int(np.prod(shape[1:]))
            std = 1.0 if name.endswith(("wte.weight", "query", "positional_embedding")) else fan_in**-0.5
            state[name] = torch.from_numpy((rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float16))
    write_checkpoint(path, dataclasses.replace(cfg, torch_dtype="float16"), state, ranks, dtype="float16")


def export_child(src: str, out: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qwenvl_edge.cli", "export", src, "-o", out, "--overwrite",
                           "--vision", "fp32", "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = proc.stdout
    return {"seconds": seconds, "peak_rss_gib": max(peak, before) / 2**20, "summary": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--vocab", default=os.path.join(HERE, "..", "..", "shared", "qwen.tiktoken"))
    args = p.parse_args()
    vocab = args.vocab if os.path.isfile(args.vocab) else None
    cache = os.path.join(HERE, "cache", "export_rss")
    os.makedirs(cache, exist_ok=True)
    rows = []
    for layers in sorted(args.layers):
        src = os.path.join(cache, f"qwen7b-dims-{layers}l")
        checkpoint(src, layers, vocab)
        size = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src)) / 2**30
        result = export_child(src, os.path.join(cache, f"bundle-{layers}l"))
        rows.append({"layers": layers, "checkpoint_gib": size, **result})
        print(f"{layers} layer(s): checkpoint {size:.2f} GiB, export {result['seconds']:.0f} s, "
              f"peak RSS {result['peak_rss_gib']:.2f} GiB", flush=True)
        print(result["summary"], flush=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        per_layer_s = (b["seconds"] - a["seconds"]) / (b["layers"] - a["layers"])
        per_layer_rss = (b["peak_rss_gib"] - a["peak_rss_gib"]) / (b["layers"] - a["layers"])
        full_s = b["seconds"] + (32 - b["layers"]) * per_layer_s
        print(f"per decoder block: {per_layer_s:.0f} s, {per_layer_rss * 1024:+.0f} MiB peak RSS; "
              f"extrapolated to 32 blocks: {full_s / 60:.0f} min, peak RSS {b['peak_rss_gib'] + (32 - b['layers']) * max(per_layer_rss, 0):.2f} GiB")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "vocab": bool(vocab),
                            "rows": [{k: v for k, v in r.items() if k != "summary"} for r in rows]}) + "\n")


if __name__ == "__main__":
    main()
