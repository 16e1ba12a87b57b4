"""Decode speed and KV memory with a float32 vs an fp16 KV cache, at two context lengths, on the
real Qwen-7B shape (the decoder of a `qwenvl-edge bench` bundle: random weights).

    python benchmarks/bench_kv_cache.py BUNDLE [--threads 2] [--contexts 256 1536] [--gen 16] [--repeats 3]

For each cache type, in one process: prefill up to each context, then decode --gen tokens --repeats
times, rewinding to the context after each (so every sample decodes at the same length). Prints
tok/s (median, range) and the KV bytes held at each context. Appends a JSON line to
benchmarks/results/kv_cache.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from qwenvl_edge import _core
from qwenvl_edge.bundle import Bundle


def measure(bundle: Bundle, kv_f16: bool, args) -> dict:
    cfg = bundle.manifest.decoder.config.as_dict()
    dec = _core.Decoder(bundle.path("decoder"), cfg, threads=args.threads, kv_f16=kv_f16,
                        context=max(args.contexts) + args.gen + 8)
    ids = np.random.default_rng(0).integers(0, 151643, max(args.contexts)).astype(np.int32)
    out = {}
    for n in sorted(args.contexts):
        dec.prefill_ids(ids[dec.length : n])
        rates = []
        for _ in range(args.repeats + 1):  # the first sample warms up
            dec.truncate(n)
            token, start = 0, time.perf_counter()
            for _ in range(args.gen):
                token = int(dec.step(token).argmax())
            rates.append(args.gen / (time.perf_counter() - start))
        kv_bytes = 2 * cfg["num_layers"] * n * cfg["hidden_size"] * (2 if kv_f16 else 4)
        out[str(n)] = {"decode_tok_s": rates[1:], "kv_gib": kv_bytes / 2**30}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--contexts", type=int, nargs="+", default=[256, 1536])
    p.add_argument("--gen", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    bundle = Bundle.open(args.bundle)
    record = {"bench": "kv_cache", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": args.threads,
              "gen": args.gen, "f32": measure(bundle, False, args), "f16": measure(bundle, True, args)}
    for n in sorted(args.contexts):
        a, b = record["f32"][str(n)], record["f16"][str(n)]
        ma, mb = statistics.median(a["decode_tok_s"]), statistics.median(b["decode_tok_s"])
        print(f"context {n:5d}: f32 {ma:5.2f} tok/s ({min(a['decode_tok_s']):.2f}-{max(a['decode_tok_s']):.2f}), "
              f"KV {a['kv_gib']:.2f} GiB | f16 {mb:5.2f} tok/s ({min(b['decode_tok_s']):.2f}-"
              f"{max(b['decode_tok_s']):.2f}), KV {b['kv_gib']:.2f} GiB | f16/f32 {mb / ma:.3f}x")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "kv_cache.jsonl")
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
