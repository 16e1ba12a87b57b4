"""Two builds of the native core side by side: the kernels written over a vector type (attention over
fp32 and fp16 caches, the fp16 and int8 float heads, per ISA path) and a decoder's prefill and decode,
each build in its own process, A B A B ..., with the ratio B/A taken pair by pair.

    python benchmarks/bench_core_ab.py OLD/_core.so NEW/_core.so --decoder FILE.qwd [--rounds 5]

A build is the `_core` extension module file itself (e.g. copied out of build/<wheel tag>/cpp/ after
`pip install -e .`), loaded by path: the child processes import nothing else of qwenvl_edge. The decoder
file is any synthetic decoder (benchmarks/bench_decoder.py writes them; qwenvl_edge.bench.synthetic_decoder).
Figures are per-call CPU times in microseconds (kernels, the least of several samples) and the best
tokens per second of two rounds (decoder: CPU time of the calling thread with --threads 1, else wall time); the table gives each build's median over the
rounds and the median of the pairwise ratios NEW/OLD (times: < 1 is faster; tok/s: > 1 is faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import subprocess
import sys
import time

import numpy as np


def load_core(path: str):
    spec = importlib.util.spec_from_file_location("_core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_call_us(fn, calls: int, samples: int = 7) -> float:
    """The least over `samples` of the mean CPU time of `calls` back-to-back calls on this thread (the
    kernel bindings run on the calling thread): on a shared machine the time spent descheduled is not
    counted, and the least sample is the one other processes disturbed least."""
    fn()
    times = []
    for _ in range(samples):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        times.append((time.thread_time() - start) / calls * 1e6)
    return min(times)


def kernel_figures(core, isas: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(0)
    heads, hd, capacity, past = 32, 128, 1024, 511  # one decode step at 512 positions, every head
    q = rng.standard_normal((1, heads, hd), dtype=np.float32)
    k32 = rng.standard_normal((heads, capacity, hd), dtype=np.float32)
    v32 = rng.standard_normal((heads, capacity, hd), dtype=np.float32)
    k16, v16 = k32.astype(np.float16), v32.astype(np.float16)
    dim, rows = 4096, 32768  # a fifth of Qwen's vocabulary: 256 MiB of fp16 weights, past any cache
    x = rng.standard_normal((1, dim), dtype=np.float32)
    w16 = (rng.standard_normal((rows, dim), dtype=np.float32) * 0.02).astype(np.float16)
    w8 = rng.integers(-127, 128, (rows, dim), dtype=np.int8)
    scale = np.full(rows, 1e-3, np.float32)
    kern = core.kernels
    out = {}
    for isa in isas:
        out[f"attention f32 {isa} us"] = per_call_us(lambda: kern.attention(q, k32, v32, past, 0.088, isa=isa), 20)
        out[f"attention f16 {isa} us"] = per_call_us(lambda: kern.attention(q, k16, v16, past, 0.088, isa=isa), 20)
        out[f"lm_head f16 {isa} us"] = per_call_us(lambda: kern.lm_head(x, w16, isa=isa), 5)
        out[f"lm_head i8 {isa} us"] = per_call_us(lambda: kern.lm_head(x, w8, scale=scale, isa=isa), 5)
    return out


def decoder_figures(core, path: str, dims: dict, threads: int, prompt: int, gen: int) -> dict[str, float]:
    dec = core.Decoder(path, dims, threads=threads, context=prompt + gen + 8)
    ids = np.random.default_rng(0).integers(0, dims["vocab_size"] - 1, prompt).astype(np.int32)
    # With one thread the calling thread does all the work: its CPU time leaves out the time other
    # processes held the core. With more, wall time (the workers' time is theirs).
    clock = time.thread_time if threads == 1 else time.perf_counter
    prefill, decode = [], []
    for r in range(3):  # the first round warms up (and faults in the weights)
        dec.reset()
        start = clock()
        token = int(dec.prefill_ids(ids)[0].argmax())
        p = clock() - start
        start = clock()
        for _ in range(gen):
            token = int(dec.step(token).argmax())
        g = clock() - start
        if r:
            prefill.append(prompt / p)
            decode.append(gen / g)
    return {f"decoder prefill {prompt} tok/s": max(prefill), f"decoder decode tok/s": max(decode)}


def child(args) -> None:
    core = load_core(args.core)
    isas = [i for i in core.kernels.supported_isas() if i in ("avx2", "avx512", "neon")]
    out = kernel_figures(core, isas)
    if args.decoder:
        out.update(decoder_figures(core, args.decoder, json.loads(args.dims), args.threads, args.prompt, args.gen))
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--decoder", help="a decoder weight file of the Qwen-7B shape (any number of layers)")
    parser.add_argument("--layers", type=int, default=4, help="the decoder file's layer count")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--gen", type=int, default=16)
    parser.add_argument("--core", help=argparse.SUPPRESS)
    parser.add_argument("--dims", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.core:
        return child(args)
    from qwenvl_edge import cpu_info
    from qwenvl_edge.bench import synthetic_decoder as syn

    dims = dataclasses.replace(syn.QWEN_7B, num_layers=args.layers).as_dict()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for which in ("old", "new"):
            cmd = [sys.executable, __file__, args.old, args.new, "--core", getattr(args, which), "--dims", json.dumps(dims),
                   "--threads", str(args.threads), "--prompt", str(args.prompt), "--gen", str(args.gen)]
            if args.decoder:
                cmd += ["--decoder", args.decoder]
            runs[which].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    cpu = cpu_info()
    print(f"{cpu['brand']}, {cpu['physical_cores']} cores; {args.rounds} rounds, old/new alternating")
    print(f"{'figure':32} {'old':>10} {'new':>10} {'new/old':>8} (min-max of the pairs)")
    for name in runs["old"][0]:
        old = [run[name] for run in runs["old"]]
        new = [run[name] for run in runs["new"]]
        ratios = [b / a for a, b in zip(old, new)]
        print(f"{name:32} {statistics.median(old):10.1f} {statistics.median(new):10.1f} "
              f"{statistics.median(ratios):8.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
