"""``qwenvl-edge bench``: build (once) a random bundle of the chosen shape, or take ``--bundle PATH``,
measure the machine's roof, our engine (warm, and cold: the first answer of new processes) and, with
``--peers``, llama.cpp, onnxruntime MatMulNBits and PyTorch, all in one run; print a table, append one
JSON line to the results directory, draw a PNG chart.

Each engine runs in its own child process (its own peak RSS, no shared thread pools), one after
the other. Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from .synthetic_bundle import PRESETS

RESULTS_FILE = "bench.jsonl"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dims", choices=PRESETS,
                   help="qwen-vl-7b (default): the release's shapes; tiny: the tests' shapes; custom: real widths, "
                        "--layers / --vision-layers depths")
    p.add_argument("--bundle", help="measure this bundle (any export) instead of a random one of --dims")
    p.add_argument("--layers", type=int, help="decoder blocks (--dims custom)")
    p.add_argument("--vision-layers", type=int, help="ViT blocks (--dims custom)")
    p.add_argument("--threads", type=int, help="threads for every engine (default: physical cores)")
    p.add_argument("--prompt", type=int, default=256, help="prefill prompt tokens")
    p.add_argument("--gen", type=int, default=64, help="decoded tokens per decode sample")
    p.add_argument("--repeats", type=int, default=3, help="samples per figure, after one warm-up")
    p.add_argument("--peers", action="store_true",
                   help="also llama.cpp (needs llama-cpp-python and gguf), onnxruntime MatMulNBits, PyTorch and "
                        "MNN's vision (needs MNN)")
    p.add_argument("--cache", help="where synthetic bundles and GGUF files are kept (default: "
                                   "$QWENVL_EDGE_CACHE or ~/.cache/qwenvl-edge/bench)")
    p.add_argument("--results", help="directory for the JSON lines and the chart (default: "
                                     "$XDG_DATA_HOME/qwenvl-edge/bench, else ~/.local/share/qwenvl-edge/bench)")
    p.add_argument("--chart", help="PNG path (default: RESULTS/bench-DIMS-TIME.png)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from qwenvl_edge import _core, user_data

    from . import chart, report, roof, work
    from .synthetic_bundle import default_cache_dir, ensure_bundle, preset_config

    if args.prompt < 1 or args.gen < 1 or args.repeats < 1:
        raise ValueError("--prompt, --gen and --repeats must be >= 1")
    threads = args.threads or _core.cpu_info()["physical_cores"]
    cache = os.path.abspath(args.cache or default_cache_dir())
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    start = time.perf_counter()
    if args.bundle:
        if args.dims or args.layers or args.vision_layers:
            raise ValueError("--bundle measures that bundle's own shape: drop --dims / --layers / --vision-layers")
        bundle, cfg, dims = os.path.abspath(args.bundle), _bundle_config(args.bundle), "bundle"
    else:
        dims = args.dims or "qwen-vl-7b"
        cfg = preset_config(dims, args.layers, args.vision_layers)
        bundle = ensure_bundle(cfg, cache, progress=not args.quiet)
    build_s = time.perf_counter() - start
    say(f"bundle: {bundle}")
    say("measuring the roof (bandwidth, GEMM rates)")
    record: dict[str, Any] = {
        "bench": "qwenvl-edge", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "version": _core.__version__,
        "git": _git_commit(), "dims": dims,
        "config": {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "ffn": cfg.ffn_dim,
                   "vocab": cfg.vocab_size, "vision_layers": cfg.visual.layers, "vision_width": cfg.visual.width},
        "threads": threads, "prompt": args.prompt, "gen": args.gen, "repeats": args.repeats,
        "machine": {"platform": platform.platform(), **_core.cpu_info()},
        "roof": roof.measure(threads),
        "work": {"vision_flops": work.vision_flops(cfg.visual),
                 "prefill_flops_per_token": work.prefill_flops_per_token(cfg, args.prompt),
                 "decode_bytes_per_token": work.decode_bytes_per_token(cfg)},
        "bundle": {"path": bundle, "build_s": build_s},
    }
    say("ours: load, vision, prefill, decode, TTFT")
    record["ours"] = _child("ours", bundle=bundle, threads=threads, prompt=args.prompt, gen=args.gen,
                            repeats=args.repeats)
    if "error" in record["ours"]:
        raise RuntimeError(f"the benchmark of our engine failed:\n{record['ours']['error']}")
    # The read roof is the best reading of the run: the one before and those right after each decode sample.
    readings = [record["roof"]["read_gb_s"], *record["ours"]["read_after_decode_gb_s"]]
    record["roof"].update(read_gb_s=max(readings), read_samples_gb_s=readings)
    say(f"ours, cold: the first answer of {args.repeats} new processes (as `qwenvl-edge ask` runs)")
    record["cold"] = _cold(bundle, threads, args.repeats)
    record["peers"] = _peers(args, cfg, cache, threads, say) if args.peers else {}

    print(report.table(record))
    results = args.results or user_data.directory("bench")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, RESULTS_FILE), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    png = args.chart or os.path.join(results, f"bench-{dims}-{record['time'].replace(':', '')}.png")
    chart.draw(record, png)
    print(f"\nresults appended to {os.path.join(results, RESULTS_FILE)}; chart: {png}")
    return record


def _peers(args, cfg, cache: str, threads: int, say) -> dict[str, Any]:
    from qwenvl_edge.export.decoder_file import decoder_config

    from . import synthetic_decoder

    peers: dict[str, Any] = {}
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as e:
        peers["llama.cpp"] = {"skipped": f"llama.cpp skipped: {e.name} is not installed (pip install llama-cpp-python gguf)"}
    else:
        dims = decoder_config(cfg)
        path = os.path.join(cache, f"llama-L{dims.num_layers}-h{dims.hidden_size}-f{dims.ffn_dim}-v{dims.vocab_size}"
                                   "-q4_0.gguf")
        if not os.path.exists(path):
            say(f"writing {os.path.basename(path)} (random Q4_0, the same decoder shape)")
        synthetic_decoder.ensure(path, synthetic_decoder.write_gguf, dims)
        say("llama.cpp: load, prefill, decode")
        peers["llama.cpp"] = _child("llama.cpp", path=path, threads=threads, prompt=args.prompt, gen=args.gen,
                                    repeats=args.repeats)
    say("one int4 layer: ours vs onnxruntime MatMulNBits")
    peers["int4_layer"] = _child("int4_layer", threads=threads, repeats=args.repeats)
    say(f"PyTorch eager vision, fp32 and bf16 ({cfg.visual.layers} blocks)")
    peers["torch_vision"] = _child("torch_vision", visual=dataclasses.asdict(cfg.visual), threads=threads,
                                   repeats=args.repeats)
    if importlib.util.find_spec("MNN") is None:  # found, not imported: MNN prints the CPU's features on import
        peers["MNN"] = {"skipped": "MNN skipped: MNN is not installed (pip install MNN)"}
    else:
        from .peers import MNN_DEPTHS

        say(f"MNN vision ({' and '.join(map(str, MNN_DEPTHS))} blocks, extrapolated to {cfg.visual.layers})")
        peers["MNN"] = _child("mnn_vision", visual=dataclasses.asdict(cfg.visual), threads=threads,
                              repeats=args.repeats, cache=cache)
    peers["MNN LLM"] = {"skipped": "MNN prefill and decode not measured: MNN's exporter (llmexport) loads Qwen-VL "
                                   "only through the checkpoint's remote code (configuration_qwen.py, "
                                   "modeling_qwen.py, tokenization_qwen.py; benchmarks/NOTES_vision.md)"}
    return peers


def _bundle_config(path: str):
    from qwenvl_edge.bundle import Bundle
    from qwenvl_edge.export.config import QwenVLConfig

    return QwenVLConfig.from_dict(Bundle.open(path).manifest.model.config, source=f"{path} manifest")


def _cold(bundle: str, threads: int, repeats: int) -> dict[str, list[float]]:
    """Each figure of ours.cold over ``repeats`` new processes (the page cache stays warm)."""
    runs = [_child("cold", bundle=bundle, threads=threads, spawned=time.time()) for _ in range(repeats)]
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        raise RuntimeError(f"the cold-start run failed:\n{failed[0]}")
    return {key: [r[key] for r in runs] for key in runs[0]}


def _git_commit() -> str | None:
    """The commit of the running source when it is a git checkout (an editable install), else None."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(__file__),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _child(name: str, **kwargs) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "qwenvl_edge.bench.child", name, json.dumps(kwargs)],
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout)[-3000:] or f"exit status {done.returncode}"}
    return json.loads(lines[-1])
