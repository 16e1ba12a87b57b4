"""Decode and prefill under background load: 0 or 1 busy cores x 1 or 2 threads, two builds of the core
side by side in one run (benchmarks/NOTES_background_load.md).

    python benchmarks/bench_background_load.py --baseline /path/to/old/_core.cpython-311-x86_64-linux-gnu.so
        [--layers 8] [--prompt 128] [--gen 24] [--min-samples 5] [--max-rounds 12]

The decoder is the Qwen-7B shape with random weights and the bundle's fp16 lm_head, cut to --layers
blocks to save time and disk (3.3 GB at 8; the head, read once per token, is then a larger share of a
token's time than at 32). "busy 1" is a process spinning a Python loop in a session of its own, as a
browser would be: with the kernel's autogroup it is scheduled as its own group, not as one more thread of
ours. Each (build, threads) pair is a long-lived child that maps the file once; a round takes one
sample (a prefill of --prompt tokens, then --gen decoded tokens) from every child, old and new of a
thread count one after the other (the new/old ratios are the medians of these pairs), the order changed
each round, with and without the busy process, so the machine's drift hits every cell alike. Rounds
repeat until every cell has --min-samples and adding the round moved no cell's median by more than
--settle, or --max-rounds. The load average (1 min) and the number of runnable tasks are recorded at
each sample. Appends one JSON line to benchmarks/results/background_load.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUSY_LOOP = "while True: pass"


def load_core(path: str | None) -> None:
    """Make `qwenvl_edge._core` the extension at path (a baseline build) before the package imports it."""
    if path is None:
        return
    spec = importlib.util.spec_from_file_location("qwenvl_edge._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["qwenvl_edge._core"] = module


def serve(args) -> None:
    """A child: one decoder of one build and thread count; one sample per line read on stdin."""
    load_core(args.core)
    import numpy as np

    from qwenvl_edge import _core

    config = json.loads(args.config)
    dec = _core.Decoder(args.file, config, threads=args.threads, context=args.prompt + args.gen + 8)
    prompt = np.random.default_rng(0).integers(0, config["vocab_size"], args.prompt).astype(np.int32)

    def sample() -> dict:
        dec.reset()
        start = time.perf_counter()
        token = int(dec.prefill_ids(prompt)[0].argmax())
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.gen):
            token = int(dec.step(token).argmax())
        decode = time.perf_counter() - start
        return {"prefill_tok_s": args.prompt / prefill, "decode_tok_s": args.gen / decode}

    sample()  # warm-up: faults the mapped weights in
    print(json.dumps({"isa": dec.isa, "core": _core.__file__}), flush=True)
    for _ in sys.stdin:
        print(json.dumps(sample()), flush=True)


class StopEarly(Exception):
    pass


def stop_early(*_):
    """SIGTERM or Ctrl-C: stop the busy process, then report the rounds so far."""
    raise StopEarly


def machine_load() -> tuple[float, int]:
    """(1-minute load average, runnable tasks now) from /proc/loadavg."""
    fields = open("/proc/loadavg").read().split()
    return float(fields[0]), int(fields[3].split("/")[0])


class Cell:
    def __init__(self, build: str, core: str | None, threads: int, args, config: dict):
        self.build, self.threads = build, threads
        cmd = [sys.executable, __file__, "--serve", "--file", args.file, "--config", json.dumps(config),
               "--threads", str(threads), "--prompt", str(args.prompt), "--gen", str(args.gen)]
        if core:
            cmd += ["--core", core]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.proc.stdout.readline())
        self.isa, self.core = ready["isa"], ready["core"]

    def sample(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.build} child with {self.threads} threads died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def start_busy() -> subprocess.Popen:
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)
    time.sleep(0.5)  # let it reach its loop and the scheduler see it
    return busy


def round_order(cells: list, builds: int, rnd: int) -> list:
    """The builds of one thread count one after the other (their ratio is paired), which comes first and
    which thread count goes first alternating from round to round."""
    pairs = [cells[i:i + builds] for i in range(0, len(cells), builds)]
    if (rnd // 2) % 2:
        pairs.reverse()
    return [cell for pair in pairs for cell in (pair[::-1] if rnd % 2 else pair)]


def medians(samples: dict, key: str) -> dict:
    return {cell: statistics.median(s[key] for s in runs) for cell, runs in samples.items() if runs}


def settled(samples: dict, before: dict, tolerance: float) -> bool:
    now = {key: medians(samples, key) for key in ("prefill_tok_s", "decode_tok_s")}
    return all(abs(now[k][c] / before[k][c] - 1) <= tolerance for k in now for c in now[k] if c in before.get(k, {}))


def paired_ratio(samples: dict, a: tuple, b: tuple, key: str) -> float:
    """The median over rounds of cell a / cell b, each pair taken in the same round."""
    base = {s["round"]: s[key] for s in samples[b]}
    return statistics.median(s[key] / base[s["round"]] for s in samples[a] if s["round"] in base)


def table(samples: dict, builds: list[str]) -> str:
    heads = ["busy cores", "threads"] + [f"{b} decode tok/s" for b in builds] + [f"{b} prefill tok/s" for b in builds]
    if len(builds) == 2:
        heads += ["new/old decode", "new/old prefill"]
    heads += [f"{b} decode 2 threads/1" for b in builds]
    lines = ["| " + " | ".join(heads) + " |", "|---" * len(heads) + "|"]
    for busy in (0, 1):
        for threads in (1, 2):
            row = {}
            for key in ("decode_tok_s", "prefill_tok_s"):
                for b in builds:
                    runs = [s[key] for s in samples[(b, threads, busy)]]
                    row[(b, key)] = (statistics.median(runs), min(runs), max(runs))
            cells = [f"{row[(b, k)][0]:.2f} ({row[(b, k)][1]:.2f}-{row[(b, k)][2]:.2f})"
                     for k in ("decode_tok_s", "prefill_tok_s") for b in builds]
            ratios = [f"{paired_ratio(samples, ('new', threads, busy), ('old', threads, busy), k):.2f}"
                      for k in ("decode_tok_s", "prefill_tok_s") if len(builds) == 2]
            ratios += [f"{paired_ratio(samples, (b, 2, busy), (b, 1, busy), 'decode_tok_s'):.2f}" if threads == 2 else ""
                       for b in builds]
            lines.append(f"| {busy} | {threads} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="the old build's _core extension file (omit: the new one only)")
    parser.add_argument("--candidate", help="the new build's _core extension file (default: the installed one)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--gen", type=int, default=24)
    parser.add_argument("--min-samples", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=12)
    parser.add_argument("--settle", type=float, default=0.03, help="largest move of a median that counts as settled")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--core", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    from qwenvl_edge import _core
    from qwenvl_edge.bench import synthetic_decoder as syn

    dims = dataclasses.replace(syn.QWEN_7B, num_layers=args.layers)
    cache = os.path.join(HERE, "cache")
    os.makedirs(cache, exist_ok=True)
    # the format version in the name: a file of an older format is written again
    args.file = os.path.join(cache, f"qwen7b-L{args.layers}-v{_core.FORMAT_VERSION}-f16head.qwd")
    print(f"preparing {args.file} ...", flush=True)
    syn.ensure(args.file, syn.write_ours, dims, "f16")

    builds = [("old", args.baseline), ("new", args.candidate)] if args.baseline else [("new", args.candidate)]
    names = [b for b, _ in builds]
    signal.signal(signal.SIGTERM, stop_early)
    signal.signal(signal.SIGINT, stop_early)
    cells = [Cell(b, core, t, args, dims.as_dict()) for t in (1, 2) for b, core in builds]  # old, new adjacent
    samples = {(c.build, c.threads, busy): [] for c in cells for busy in (0, 1)}
    log = []
    try:
        for rnd in range(args.max_rounds):
            before = {key: medians(samples, key) for key in ("prefill_tok_s", "decode_tok_s")}
            for busy in ((0, 1) if rnd % 2 == 0 else (1, 0)):
                proc = start_busy() if busy else None
                try:
                    for cell in round_order(cells, len(builds), rnd):
                        load_before = machine_load()
                        s = cell.sample()
                        s.update(build=cell.build, threads=cell.threads, busy=busy, round=rnd,
                                 loadavg=load_before[0], runnable=load_before[1])
                        samples[(cell.build, cell.threads, busy)].append(s)
                        log.append(s)
                        print(f"round {rnd} busy {busy} {cell.build} t{cell.threads}: decode {s['decode_tok_s']:.2f} "
                              f"prefill {s['prefill_tok_s']:.1f} tok/s  (load {s['loadavg']:.2f}, runnable {s['runnable']})",
                              flush=True)
                finally:
                    if proc:
                        proc.kill()
                        proc.wait()
            if rnd + 1 >= args.min_samples and settled(samples, before, args.settle):
                break
    except StopEarly:  # the rounds so far are reported; a round cut short leaves some cells one sample more
        print("stopped early", flush=True)
    finally:
        for cell in cells:
            cell.close()

    loads = [s["loadavg"] for s in log]
    print(f"\nQwen-7B shape, {args.layers} layers, fp16 head, prompt {args.prompt}, gen {args.gen}; "
          f"{platform.processor() or platform.machine()}, ISA {cells[0].isa}, {os.cpu_count()} CPUs; "
          f"median (min-max) of {rnd + 1} rounds; load average at the samples {min(loads):.2f}-{max(loads):.2f} "
          f"(median {statistics.median(loads):.2f})")
    for build, core in {c.build: c.core for c in cells}.items():
        print(f"{build}: {core}")
    print(table(samples, names))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "background_load.jsonl"), "a") as out:
        out.write(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "version": _core.__version__,
                              "cpu": _core.cpu_info(), "layers": args.layers, "prompt": args.prompt, "gen": args.gen,
                              "baseline": args.baseline, "candidate": args.candidate or _core.__file__,
                              "samples": log}) + "\n")


if __name__ == "__main__":
    main()
