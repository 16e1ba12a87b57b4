"""Vision graphs side by side in one process: seconds per image of each, in alternating rounds (so a
change of the machine's load hits them alike), and each graph's features against a float graph's
on the export's check pictures (cosine, min and mean).

    python benchmarks/ab_vision.py OLD/vision.onnx NEW/vision.onnx [--float FP32/vision.onnx]
        [--threads 2] [--rounds 5]

The sessions are the runtime's (qwenvl_edge.vision.VisionEncoder, weights prepacked). Prints a
Markdown table; the first graph is the baseline of the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from qwenvl_edge.export.vision_onnx import check_images, compare
from qwenvl_edge.vision import VisionEncoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("graphs", nargs="+", help="vision.onnx files; the first is the baseline")
    p.add_argument("--float", dest="reference", help="a float graph of the same weights: the cosine reference")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    encoders = [VisionEncoder(g, threads=args.threads) for g in args.graphs]
    one = np.random.default_rng(0).standard_normal((1, 3, encoders[0].image_size, encoders[0].image_size),
                                                   dtype=np.float32)
    load = [os.getloadavg()[0]]
    for e in encoders:
        e.encode(one)  # warm-up
    seconds: list[list[float]] = [[] for _ in encoders]
    for _ in range(args.rounds):
        for e, samples in zip(encoders, seconds):
            start = time.perf_counter()
            e.encode(one)
            samples.append(time.perf_counter() - start)
    load.append(os.getloadavg()[0])
    quality = [None] * len(encoders)
    if args.reference:
        pixels = check_images(encoders[0].image_size)
        want = VisionEncoder(args.reference, threads=args.threads, prepack=False).encode(pixels)
        quality = [compare(e.encode(pixels), want) for e in encoders]
    base = statistics.median(seconds[0])
    print(f"{args.threads} threads, {args.rounds} alternating rounds, load average {load[0]:.2f} -> {load[1]:.2f}")
    print("| graph | s per image (median) | half-range | vs first | cosine vs float (min / mean) |")
    print("|---|---:|---:|---:|---|")
    for path, samples, q in zip(args.graphs, seconds, quality):
        m = statistics.median(samples)
        cos = f"{q['cosine_min']:.5f} / {q['cosine_mean']:.5f}" if q else ""
        print(f"| {path} | {m:.3f} | {(max(samples) - min(samples)) / 2:.3f} | {base / m:.2f}x | {cos} |")


if __name__ == "__main__":
    main()
