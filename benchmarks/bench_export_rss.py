"""Peak RSS and time of `qwenvl-edge export` with GPTQ for a checkpoint with the Qwen-7B decoder's
dims (hidden 4096, 32 heads x 128, FFN 11008, vocab 151936), random fp16 weights, Hugging Face layout.

    python benchmarks/bench_export_rss.py [--layers 1 2] [--sequences 16] [--tokens 512] [--act-order]

Fewer than 32 blocks, extrapolated: the export streams the decoder block by block, so peak RSS should
not grow with the block count (two or three counts show it) and the time grows by a constant per
block: per_block = (t(last) - t(first)) / (L_last - L_first), t(32) = t(last) + (32 - L_last) * per_block;
the peak RSS bound adds the growth between the last two counts for each missing block.
Calibration: `--sequences` text samples cut at `--tokens` tokens (16 x 512 = 8,192 tokens by default),
given to the command as a JSON-lines file. The ViT is small (width 64, 2 blocks; the adapter at the
real 4096 width), so this measures the decoder's export; bench_vision.py covers the real ViT.
The checkpoints are written once under benchmarks/cache/export_rss/ (the 1-block one is 2.9 GB).

Each export runs in a child process. Peak RSS is the child's ru_maxrss (os.wait4); a 0.1 s poll of
/proc/PID/status splits resident memory into anonymous (what the exporter allocates) and file-backed
(mapped checkpoint pages, reclaimable) and finds the peak inside the decoder step. Per-block phase
times (load, forward, hessian, solve) come from the bundle manifest's export stats. Appends one JSON
line per run to benchmarks/results/export_rss.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch

from qwenvl_edge.export import names
from qwenvl_edge.export.calibration import PASSAGES
from qwenvl_edge.export.config import QwenVLConfig, VisualConfig
from qwenvl_edge.export.reference_vision import sincos_2d_table
from qwenvl_edge.export.tiny import tiny_ranks, write_checkpoint
from qwenvl_edge.vocab import SpecialIds

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache", "export_rss")
RESULTS = os.path.join(HERE, "results", "export_rss.jsonl")
GIB = 2**30
FULL = 32


def checkpoint(path: str, layers: int, vocab: str | None) -> None:
    """A float16 checkpoint with random weights, built tensor by tensor in float16."""
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


def calibration_file(sequences: int) -> str:
    """JSON lines, each the built-in passages in a shuffled order (well over 512 tokens; the command
    cuts them at --calibration-tokens)."""
    path = os.path.join(CACHE, f"calibration-{sequences}.jsonl")
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(sequences):
            passages = list(PASSAGES)
            rng.shuffle(passages)
            f.write(json.dumps({"text": "\n".join(passages * 2)}, ensure_ascii=False) + "\n")
    return path


def _status(pid: int) -> dict[str, int]:
    """RssAnon, RssFile, VmRSS of a live process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def export_child(src: str, out: str, calibration: str, tokens: int, act_order: bool) -> dict:
    command = [sys.executable, "-m", "qwenvl_edge.cli", "export", src, "-o", out, "--overwrite", "--vision", "fp32",
               "--quiet", "--calibration", calibration, "--calibration-tokens", str(tokens)]
    command += ["--act-order"] if act_order else []
    log = out + ".stderr"
    start = time.perf_counter()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    samples = []  # (seconds since start, RssAnon, RssFile)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaping here keeps the child's rusage
        if pid:
            break
        try:
            s = _status(proc.pid)
            samples.append((time.perf_counter() - start, s["RssAnon"], s["RssFile"]))
        except (FileNotFoundError, KeyError):
            pass  # exiting
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        with open(log) as f:
            raise RuntimeError(f"export failed:\n{f.read()}")
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    times = manifest["export"]["seconds"]
    decoder_start = times["vision"]  # the decoder step follows the vision export
    in_decoder = [a for t, a, _ in samples if decoder_start <= t <= decoder_start + times["decoder"]]
    blocks = manifest["export"]["layers"]
    return {
        "seconds": seconds, "vision_s": times["vision"], "decoder_s": times["decoder"],
        "calibration_tokens": manifest["decoder"]["quantization"]["calibration"]["tokens"],
        "peak_rss_gib": usage.ru_maxrss * 1024 / GIB,  # ru_maxrss: KiB on Linux
        "peak_anon_gib": max(a for _, a, _ in samples) / GIB,
        "peak_file_gib": max(f for _, _, f in samples) / GIB,
        "peak_anon_decoder_gib": max(in_decoder, default=0) / GIB,
        "block_s": [{k: round(v, 2) for k, v in b["seconds"].items()} for b in blocks],
        "gptq_over_rtn": [b["gptq_over_rtn"] for b in blocks],
    }


def _git() -> str:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()

    dirty = run("status", "--porcelain", "--untracked-files=no")
    return run("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--sequences", type=int, default=16, help="calibration samples")
    p.add_argument("--tokens", type=int, default=512, help="tokens per calibration sample")
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--vocab", default=os.path.join(HERE, "..", "..", "shared", "qwen.tiktoken"))
    args = p.parse_args()
    vocab = args.vocab if os.path.isfile(args.vocab) else None
    os.makedirs(CACHE, exist_ok=True)
    calibration = calibration_file(args.sequences)
    rows = []
    for layers in sorted(args.layers):
        src = os.path.join(CACHE, f"qwen7b-dims-{layers}l")
        checkpoint(src, layers, vocab)
        size = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src)) / GIB
        row = {"layers": layers, "checkpoint_gib": round(size, 3),
               **export_child(src, os.path.join(CACHE, f"bundle-{layers}l"), calibration, args.tokens, args.act_order)}
        rows.append(row)
        print(f"{layers} block(s): export {row['seconds']:.0f} s (vision {row['vision_s']:.0f} s, decoder "
              f"{row['decoder_s']:.0f} s), calibration {row['calibration_tokens']} tokens; peak RSS "
              f"{row['peak_rss_gib']:.2f} GiB (anonymous {row['peak_anon_gib']:.2f}, in the decoder step "
              f"{row['peak_anon_decoder_gib']:.2f}; file-backed {row['peak_file_gib']:.2f})", flush=True)
        for i, b in enumerate(row["block_s"]):
            print(f"  block {i}: " + ", ".join(f"{k} {v:.1f} s" for k, v in b.items())
                  + f"; GPTQ/RTN median {row['gptq_over_rtn'][i]:.3f}", flush=True)
    record = {"bench": "export_rss", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "git": _git(),
              "threads": torch.get_num_threads(), "vocab": bool(vocab), "act_order": args.act_order,
              "calibration": f"{args.sequences} x {args.tokens} tokens", "rows": rows}
    if len(rows) > 1:  # time from the first and last counts, RSS growth from the last two
        a, b = rows[0], rows[-1]
        per_block = (b["seconds"] - a["seconds"]) / (b["layers"] - a["layers"])
        growth = (b["peak_rss_gib"] - rows[-2]["peak_rss_gib"]) / (b["layers"] - rows[-2]["layers"])
        peak = b["peak_rss_gib"] + (FULL - b["layers"]) * max(growth, 0)
        record["extrapolated_32"] = {"seconds": b["seconds"] + (FULL - b["layers"]) * per_block,
                                     "per_block_s": per_block, "peak_rss_gib_at_most": peak}
        print(f"per decoder block: {per_block:.0f} s; peak RSS {growth * 1024:+.0f} MiB per block from "
              f"{rows[-2]['layers']} to {b['layers']}; extrapolated to {FULL} blocks: "
              f"{record['extrapolated_32']['seconds'] / 60:.0f} min, peak RSS {peak:.2f} GiB at most", flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
