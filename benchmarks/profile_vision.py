"""Where a vision pass spends its time: onnxruntime's profiler on the bundle's vision graph, with the
runtime's own session options (qwenvl_edge.vision.session_options), summed per role of the node
(the ViT's QKV / out-proj / MLP projections, their activation quantization, the attention's
products, softmax, layer norm, GELU, the adapter) and per onnxruntime operator.

    python benchmarks/profile_vision.py GRAPH.onnx [--threads 2] [--runs 2]
    python benchmarks/profile_vision.py --depth 4 [--variant int8]   # a random graph at the real widths

One warm-up pass, then ``--runs`` profiled passes; the figures are per pass (mean over the runs).
Nodes are named after the checkpoint's modules (export/vision_graph.py) and onnxruntime's fusions
keep a fused node's first name, so a node's name tells its role. Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import sys
import tempfile

import numpy as np
import onnxruntime as ort

from qwenvl_edge.vision import INPUT, session_options

# (role, pattern on the node name); the first match wins. A fusion that names its node after itself
# (onnxruntime's Gelu) is found by its operator, OPERATOR_ROLES.
ROLES = [
    ("adapter (kv_proj, attention, out_proj, ln_post, proj)", r"^(attn_pool|ln_post|proj)"),
    ("patch conv, positions, ln_pre", r"^(conv1|patches|ln_pre)"),
    ("QKV projection", r"attn\.in_proj"),
    ("attention out-projection", r"attn\.out_proj"),
    ("MLP c_fc", r"mlp\.c_fc"),
    ("MLP c_proj", r"mlp\.c_proj"),
    ("attention quantization (q, k, probs, v)", r"attn/(q_|k_|prob|v_)"),
    ("attention q k^T", r"attn/scores"),
    ("attention softmax", r"attn/Softmax"),
    ("attention probs v", r"attn/context"),
    ("layer norm", r"ln_[12]"),
    ("residual adds", r"_residual"),
    ("head split / join (reshape, transpose, scale)", r"attn/"),
]

OPERATOR_ROLES = {"Gelu": "GELU", "BiasGelu": "GELU"}


def role(node: str, op: str) -> str:
    for name, pattern in ROLES:
        if re.search(pattern, node):
            return name
    return OPERATOR_ROLES.get(op, "other")


@dataclasses.dataclass
class Profile:
    passes: int
    wall_s: list[float]
    by_role: dict[str, float]  # seconds per pass
    by_op: dict[str, float]
    by_role_op: dict[tuple[str, str], float]


def profile(path: str, threads: int, runs: int) -> Profile:
    options = session_options(threads)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "vision")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        size = session.get_inputs()[0].shape[2]
        pixels = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
        for _ in range(runs + 1):
            session.run(None, {INPUT: pixels})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    run_starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    walls = [e["dur"] / 1e6 for e in events if e.get("name") == "model_run"][1:]
    first = run_starts[1]  # the first run is the warm-up
    by_role: dict[str, float] = collections.defaultdict(float)
    by_op: dict[str, float] = collections.defaultdict(float)
    by_role_op: dict[tuple[str, str], float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or e["ts"] < first or not e["name"].endswith("_kernel_time"):
            continue
        node, op = e["name"][: -len("_kernel_time")], e["args"]["op_name"]
        seconds = e["dur"] / 1e6 / runs
        by_role[role(node, op)] += seconds
        by_op[op] += seconds
        by_role_op[role(node, op), op] += seconds
    return Profile(runs, walls, dict(by_role), dict(by_op), dict(by_role_op))


def markdown(p: Profile) -> str:
    total = sum(p.by_role.values())
    wall = float(np.mean(p.wall_s))
    lines = [f"per pass: wall {wall:.3f} s (mean of {p.passes}), nodes {total:.3f} s", "",
             "| role | s per pass | share | operators |", "|---|---:|---:|---|"]
    for name, s in sorted(p.by_role.items(), key=lambda kv: -kv[1]):
        ops = sorted(((op, t) for (r, op), t in p.by_role_op.items() if r == name), key=lambda kv: -kv[1])
        listed = ", ".join(f"{op} {t:.3f}" for op, t in ops)
        lines.append(f"| {name} | {s:.3f} | {100 * s / total:.1f}% | {listed} |")
    lines += ["", "| onnxruntime operator | s per pass | share |", "|---|---:|---:|"]
    for op, s in sorted(p.by_op.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {op} | {s:.3f} | {100 * s / total:.1f}% |")
    return "\n".join(lines)


def random_graph(depth: int, variant: str, folder: str) -> str:
    from qwenvl_edge.export.config import VisualConfig
    from qwenvl_edge.export.random_vision import write_vision
    from qwenvl_edge.export.vision_graph import FILE

    write_vision(dataclasses.replace(VisualConfig(), layers=depth), folder, variant)
    return os.path.join(folder, FILE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("graph", nargs="?", help="a vision.onnx (default: a random graph of --depth blocks)")
    p.add_argument("--depth", type=int, default=4, help="ViT blocks of the random graph (real widths)")
    p.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.graph:
        print(markdown(profile(args.graph, args.threads, args.runs)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(markdown(profile(random_graph(args.depth, args.variant, tmp), args.threads, args.runs)))


if __name__ == "__main__":
    main()
