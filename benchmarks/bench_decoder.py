"""Decoder speed at the real Qwen-7B shape (random weights), ours and llama.cpp side by side in one run.

    python benchmarks/bench_decoder.py [--threads 2] [--prompt 256] [--gen 32] [--layers 32] [--repeats 3]

Reports per engine: load s, prefill tok/s (a --prompt-token prompt), decode tok/s, peak RSS, and the
decode rate as a fraction of the read bandwidth measured around that engine's run (bytes read per
token x tok/s / bandwidth) and, for ours, the median of each decode sample against a bandwidth reading
taken right after it ("paired"). Medians over --repeats after a warm-up that also faults the mmapped
weights in.
Engines run one at a time, each in a subprocess. Appends one JSON line to benchmarks/results/.
Synthetic files are cached in benchmarks/cache/ (several GB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from qwenvl_edge import _core
from qwenvl_edge.bench import peers, roof
from qwenvl_edge.bench.child import peak_rss_gib
from qwenvl_edge.bench import synthetic_decoder as syn
from qwenvl_edge.manifest import DecoderConfig

HERE = os.path.dirname(os.path.abspath(__file__))

ENGINES = ("ours-q8", "ours-q8-int8head", "ours-exact", "llama.cpp")


def run_ours(path: str, dims: DecoderConfig, args, exact: bool) -> dict:
    start = time.perf_counter()
    dec = _core.Decoder(path, dims.as_dict(), threads=args.threads, exact=exact, context=args.prompt + args.gen + 8)
    load = time.perf_counter() - start
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, 151643, args.prompt).astype(np.int32)
    prefill, decode, bandwidth = [], [], []
    for r in range(args.repeats + 1):  # the first round warms up (and faults in the weights)
        dec.reset()
        start = time.perf_counter()
        logits = dec.prefill_ids(prompt)
        p = time.perf_counter() - start
        token = int(logits[0].argmax())
        start = time.perf_counter()
        for _ in range(args.gen):
            token = int(dec.step(token).argmax())
        g = time.perf_counter() - start
        if r:
            prefill.append(args.prompt / p)
            decode.append(args.gen / g)
            if r == 1:  # every buffer is touched by now; the bandwidth reads below allocate 1 GiB more
                rss = peak_rss_gib()
            bandwidth.append(roof.read_bandwidth_gb_s(args.threads, gib=1.0, passes=3))
    return {"load_s": load, "prefill_tok_s": prefill, "decode_tok_s": decode, "isa": dec.isa,
            "bandwidth_after_decode_gb_s": bandwidth, "peak_rss_gib": rss}


def child(args) -> None:
    dims = dataclasses.replace(syn.QWEN_7B, num_layers=args.layers)
    if args.engine == "llama.cpp":
        out = peers.llama_cpp(args.file, args.threads, args.prompt, args.gen, args.repeats)
        out["isa"], out["load_s"] = "llama.cpp", out["load_s"][0]
    else:
        out = run_ours(args.file, dims, args, exact=args.engine == "ours-exact")
    out.setdefault("peak_rss_gib", peak_rss_gib())
    print(json.dumps(out))


def measure_bandwidth(threads: int) -> float:
    gb_s = roof.read_bandwidth_gb_s(threads)
    print(f"read bandwidth, {threads} threads: {gb_s:.1f} GB/s", flush=True)
    return gb_s


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ± {statistics.pstdev(values):5.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--gen", type=int, default=32)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        return child(args)

    dims = dataclasses.replace(syn.QWEN_7B, num_layers=args.layers)
    cache = os.path.join(HERE, "cache")
    os.makedirs(cache, exist_ok=True)
    tag = f"qwen7b-L{dims.num_layers}-v{_core.FORMAT_VERSION}"  # a file of an older format is written again
    files = {
        "ours-q8": (os.path.join(cache, f"{tag}-f16head.qwd"), syn.write_ours, "f16"),
        "ours-exact": (os.path.join(cache, f"{tag}-f16head.qwd"), syn.write_ours, "f16"),
        "ours-q8-int8head": (os.path.join(cache, f"{tag}-int8head.qwd"), syn.write_ours, "int8"),
        "llama.cpp": (os.path.join(cache, f"{tag}-q4_0.gguf"), syn.write_gguf, None),
    }
    engines = [e for e in args.engines.split(",") if e]
    for engine in engines:
        path, writer, head = files[engine]
        print(f"[{engine}] preparing {os.path.basename(path)} ...", flush=True)
        syn.ensure(path, writer, dims, *([head] if head else []))

    # The read bandwidth of a VM moves with its neighbours (14.5-22 GB/s within an hour on one 2-vCPU
    # host): it is read before each engine and after the last, and each engine is held to the higher
    # of the two readings around its own run.
    samples = [measure_bandwidth(args.threads)]
    results = {}
    for engine in engines:
        path = files[engine][0]
        cmd = [sys.executable, __file__, "--engine", engine, "--file", path, "--threads", str(args.threads),
               "--prompt", str(args.prompt), "--gen", str(args.gen), "--layers", str(args.layers),
               "--repeats", str(args.repeats)]
        print(f"[{engine}] running ...", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[{engine}] failed:\n{done.stderr[-2000:]}", flush=True)
            continue
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        samples.append(measure_bandwidth(args.threads))
        results[engine]["bandwidth_gb_s"] = max(samples[-2:])
    bandwidth = max(samples)

    bytes_per_token = {"ours-q8": syn.decode_bytes_ours(dims, "f16"), "ours-exact": syn.decode_bytes_ours(dims, "f16"),
                       "ours-q8-int8head": syn.decode_bytes_ours(dims, "int8"), "llama.cpp": syn.decode_bytes_gguf(dims)}
    peer = results.get("llama.cpp")
    print(f"\nQwen-7B shape ({dims.num_layers} layers), {args.threads} threads, prompt {args.prompt}, gen {args.gen}, "
          f"median ± sd of {args.repeats}; bandwidth read {', '.join(f'{b:.1f}' for b in samples)} GB/s")
    print(f"{'engine':<18} {'load s':>7} {'prefill tok/s':>16} {'decode tok/s':>16} {'GB/token':>9} {'% of bw':>8} "
          f"{'RSS GiB':>8} {'prefill x':>9} {'decode x':>9}")
    for engine, r in results.items():
        d = statistics.median(r["decode_tok_s"])
        gb = bytes_per_token[engine] / 1e9
        px = statistics.median(r["prefill_tok_s"]) / statistics.median(peer["prefill_tok_s"]) if peer else float("nan")
        dx = d / statistics.median(peer["decode_tok_s"]) if peer else float("nan")
        share = f"{100 * gb * d / r['bandwidth_gb_s']:7.1f}%"
        if "bandwidth_after_decode_gb_s" in r:  # each decode sample against the bandwidth read right after it
            paired = [gb * t / b for t, b in zip(r["decode_tok_s"], r["bandwidth_after_decode_gb_s"])]
            share += f" ({100 * statistics.median(paired):.0f}% paired)"
        print(f"{engine:<18} {r['load_s']:7.2f} {summary(r['prefill_tok_s']):>16} {summary(r['decode_tok_s']):>16} "
              f"{gb:9.2f} {share:>8} {r['peak_rss_gib']:8.2f} {px:9.2f} {dx:9.2f}")
    record = {"bench": "decoder", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "git": _git_sha(),
              "machine": platform.machine(), "cpu": _core.cpu_info(), "threads": args.threads, "prompt": args.prompt,
              "gen": args.gen,
              "layers": dims.num_layers, "bandwidth_gb_s": bandwidth, "bandwidth_samples_gb_s": samples, "results": results}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "decoder.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
