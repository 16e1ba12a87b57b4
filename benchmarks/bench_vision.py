"""Vision encoder + adapter at ViT-bigG dims (random weights), one image, in one run:
PyTorch eager fp32 and bf16 of the reference graph, onnxruntime fp32 and int8 of the exported graph.

    python benchmarks/bench_vision.py [--threads 2] [--depths 4 8] [--repeats 3]

The full 48-block model is 7.6 GB at fp32 and ~25 s per eager pass here, so each engine runs the real
adapter with two ViT depths, and the time is extrapolated linearly to 48 blocks:
per_block = (t(d2) - t(d1)) / (d2 - d1), full = t(d2) + (48 - d2) * per_block. Also the features'
cosine int8 vs fp32 on varied pictures at the deeper depth. Appends a JSON line to
benchmarks/results/vision.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from qwenvl_edge.export.config import VisualConfig
from qwenvl_edge.export.random_vision import random_visual as random_visual_of
from qwenvl_edge.export.random_vision import write_vision
from qwenvl_edge.export.vision_graph import FILE
from qwenvl_edge.export.vision_onnx import check_images, compare
from qwenvl_edge.vision import VisionEncoder

RESULTS = os.path.join(os.path.dirname(__file__), "results", "vision.jsonl")


def config(layers: int) -> VisualConfig:
    return dataclasses.replace(VisualConfig(), layers=layers)


def random_visual(layers: int, seed: int = 0):
    return random_visual_of(config(layers), seed)


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (statistics.stdev(times) if len(times) > 1 else 0.0)


def measure(depth: int, args, pixels: np.ndarray, tmp: str) -> dict:
    one = pixels[:1]
    model = random_visual(depth)
    out = {}
    with torch.no_grad():
        x = torch.from_numpy(one)
        out["torch_fp32"] = timed(lambda: model(x), args.repeats)
        bf16 = random_visual(depth).to(torch.bfloat16)
        out["torch_bf16"] = timed(lambda: bf16(x.to(torch.bfloat16)), args.repeats)
        del bf16
        reference = model(torch.from_numpy(pixels)).numpy()
    del model
    features, seconds = {}, {}
    for variant in ("fp32", "int8"):
        folder = os.path.join(tmp, f"d{depth}-{variant}")
        os.makedirs(folder)
        start = time.perf_counter()
        write_vision(config(depth), folder, variant)
        seconds[variant] = time.perf_counter() - start
        encoder = VisionEncoder(os.path.join(folder, FILE), threads=args.threads)
        out[f"ort_{variant}"] = timed(lambda: encoder.encode(one), args.repeats)
        features[variant] = encoder.encode(pixels)
        del encoder
    return {"times": out, "write_fp32_s": seconds["fp32"], "write_int8_s": seconds["int8"],
            "fp32_vs_reference": compare(features["fp32"], reference),
            "int8_vs_fp32": compare(features["int8"], features["fp32"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--depths", type=int, nargs=2, default=[4, 8])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    d1, d2 = args.depths
    pixels = check_images(448)
    with tempfile.TemporaryDirectory(dir=os.path.join(os.path.dirname(__file__), "cache")) as tmp:
        runs = {d: measure(d, args, pixels, tmp) for d in (d1, d2)}
    full_layers = VisualConfig().layers
    engines = list(runs[d2]["times"])
    table = {}
    for e in engines:
        t1, t2 = runs[d1]["times"][e][0], runs[d2]["times"][e][0]
        per_block = (t2 - t1) / (d2 - d1)
        table[e] = {"t_d1": t1, "t_d2": t2, "sd_d2": runs[d2]["times"][e][1], "per_block_s": per_block,
                    "full_s": t2 + (full_layers - d2) * per_block}
    base = table["torch_fp32"]["full_s"]
    print(f"ViT-bigG + adapter, 1 image, {args.threads} threads; measured at {d1} and {d2} of {full_layers} blocks, "
          f"extrapolated to {full_layers}")
    print(f"{'engine':<12} {'t('+str(d1)+')':>8} {'t('+str(d2)+')':>8} {'s/block':>8} {'full s':>8} {'vs torch fp32':>14}")
    for e, row in table.items():
        print(f"{e:<12} {row['t_d1']:8.2f} {row['t_d2']:8.2f} {row['per_block_s']:8.3f} {row['full_s']:8.2f} "
              f"{base / row['full_s']:13.2f}x")
    q = runs[d2]["int8_vs_fp32"]
    print(f"int8 vs fp32 features ({len(pixels)} pictures, {d2} blocks): cosine min {q['cosine_min']:.4f} "
          f"mean {q['cosine_mean']:.4f}; fp32 ONNX vs torch max rel err {runs[d2]['fp32_vs_reference']['max_rel_err']:.2e}")
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": args.threads, "depths": [d1, d2],
              "repeats": args.repeats, "table": table, "runs": {str(k): v for k, v in runs.items()}}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(record) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
