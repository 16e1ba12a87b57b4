"""The ViT's four weight products (fp32 activations x int8 weights) under each way onnxruntime offers to
run them, side by side in one process: milliseconds per product in alternating rounds, the paired ratio
of each candidate's sum over the four shapes to the exporter's, and each candidate's relative error
against the float64 product.

    python benchmarks/bench_weight_products.py [--threads 2] [--rounds 9] [--rows 1024]

Candidates (graphs of onnxruntime's CPU provider that it runs as one node, weights as constants so that
they are prepacked, bias included):
- ``exporter``: the int8 linear exactly as export/vision_graph.py writes it (DynamicQuantizeLinear,
  MatMulInteger, Cast, Mul, Add), which onnxruntime fuses into DynamicQuantizeMatMul: u8 activations
  with one scale and zero point, s8 weights per output column;
- the same graph with other session settings (threads spinning, dynamic thread blocks, the pool's worker
  pinned to a CPU);
- ``MatMulNBits 8-bit block B acc L``: block-wise 8-bit weights (scale per column and block of B along
  K); accuracy_level 4 asks for int8 activations (per block) on the VNNI path, 0 for fp32 compute;
- ``fp32 MatMul``: the float graph's product, for scale;
- ``project matmul_q4 q8``: the project's own VNNI GEMM (the decoder's prefill kernel) on 4-bit
  weights: not a candidate for the int8 graph, a measure of what a native path's GEMM reaches here;
- two parts of DynamicQuantizeMatMul, timed apart: the activation's quantization (DynamicQuantizeLinear)
  and the u8 x s8 GEMM alone (MatMulInteger, u8 input given, int32 out).

Activations have the statistics of the blocks' inputs (random_vision.py's weights): layer-norm
outputs (unit rows times gains near 1 plus small shifts) into QKV and c_fc, an attention context into
the out-projection, GELU outputs into c_proj. Prints Markdown tables; the load average before and
after.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from qwenvl_edge.export.vision_graph import GraphWriter, quantize_per_channel
from qwenvl_edge.vision import session_options

MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Shape:
    name: str
    k: int
    n: int
    activation: str  # "ln", "context" or "gelu": the statistics of the product's input


VIT_SHAPES = (Shape("QKV", 1664, 4992, "ln"), Shape("out-proj", 1664, 1664, "context"),
              Shape("c_fc", 1664, 8192, "ln"), Shape("c_proj", 8192, 1664, "gelu"))


def activation(kind: str, rows: int, k: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((rows, k), dtype=np.float32)
    if kind == "ln":
        gain = 1 + 0.1 * rng.standard_normal(k, dtype=np.float32)
        return x * gain + 0.02 * rng.standard_normal(k, dtype=np.float32)
    if kind == "context":  # a softmax-weighted mean of values: smaller than unit scale
        return 0.3 * x
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(np.float32)  # exact GELU of unit-variance inputs


def model_bytes(nodes, initializers, k: int, n: int, opset_ms: bool) -> bytes:
    graph = helper.make_graph(nodes, "product", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], initializers)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if opset_ms else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def exporter_graph(w: np.ndarray, b: np.ndarray) -> bytes:
    g = GraphWriter(None, int8=True)
    g.linear("x", "linear", w, b, result="y")
    return model_bytes(g.nodes, g.initializers, *w.shape, opset_ms=False)


def blockwise_8bit(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] weight -> MatMulNBits' B [N, blocks, block] u8 (zero point 128, the operator's default
    for 8 bits) and scales [N, blocks] (max |w| / 127 per column and block; K zero-padded)."""
    k, n = w.shape
    blocks = -(-k // block)
    wt = np.zeros((n, blocks * block), np.float32)
    wt[:, :k] = w.T
    wt = wt.reshape(n, blocks, block)
    scale = np.abs(wt).max(axis=2) / 127
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(wt / scale[..., None]), -127, 127) + 128
    return q.astype(np.uint8), scale.astype(np.float32)


def nbits_graph(w: np.ndarray, b: np.ndarray, block: int, accuracy_level: int) -> bytes:
    q, scale = blockwise_8bit(w, block)
    init = [helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape, a.tobytes(), raw=True)
            for name, a in (("wq", q), ("ws", scale), ("b", b))]
    k, n = w.shape
    node = helper.make_node("MatMulNBits", ["x", "wq", "ws", "", "", "b"], ["y"], domain=MS_DOMAIN, K=k, N=n,
                            bits=8, block_size=block, accuracy_level=accuracy_level)
    return model_bytes([node], init, k, n, opset_ms=True)


def integer_graph(w: np.ndarray, b: np.ndarray) -> bytes:
    """The GEMM alone: u8 activations given, int32 out (DynamicQuantizeMatMul minus its quantization and
    rescaling)."""
    q, _ = quantize_per_channel(w)
    k, n = w.shape
    init = [helper.make_tensor("wq", TensorProto.INT8, q.shape, q.tobytes(), raw=True)]
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["x", "wq"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [None, n])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def quantize_graph(w: np.ndarray, b: np.ndarray) -> bytes:
    """The activation's quantization alone (DynamicQuantizeLinear: min/max pass, then u8)."""
    k = w.shape[0]
    graph = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], "quantize",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info(name, t, shape) for name, t, shape in
                               (("y", TensorProto.UINT8, [None, k]), ("s", TensorProto.FLOAT, []),
                                ("z", TensorProto.UINT8, []))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def float_graph(w: np.ndarray, b: np.ndarray) -> bytes:
    init = [helper.make_tensor(name, TensorProto.FLOAT, a.shape, a.tobytes(), raw=True)
            for name, a in (("w", w), ("b", b))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    return model_bytes(nodes, init, *w.shape, opset_ms=False)


def project_q4(w: np.ndarray, b: np.ndarray, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """The project's own VNNI GEMM (docs/kernels.md 2.2, the decoder's prefill kernel): 4-bit weights
    (round-to-nearest, symmetric, groups of 128), activations int8 per row and group. Not an int8-weight
    path: a measure of what the core's kernel structure reaches at these shapes."""
    from qwenvl_edge._core import kernels
    from qwenvl_edge.export import gptq_format, q4_repack

    blocks, _ = q4_repack.repack(gptq_format.quantize_linear(w.T))
    k, n = w.shape
    return lambda x: kernels.matmul_q4(x, blocks, k, n, bias=b, mode="q8", threads=threads)


def onnx_runner(graph: Callable[[np.ndarray, np.ndarray], bytes], settings: tuple[tuple[str, str], ...] = ()):
    def make(w: np.ndarray, b: np.ndarray, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        sess = session(graph(w, b), threads, settings)
        return lambda x: sess.run(None, {"x": x})[0]
    return make


def u8(x: np.ndarray) -> np.ndarray:
    """Any u8 matrix of x's shape: the GEMM's time does not depend on the values."""
    return np.random.default_rng(1).integers(0, 256, x.shape, dtype=np.uint8)


@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[np.ndarray, np.ndarray, int], Callable[[np.ndarray], np.ndarray]]  # (w, b, threads) -> x -> y
    feed: Callable[[np.ndarray], np.ndarray] | None = None  # its input made from x once, before timing
    # (a part of a product, not a product: no error against the float one)
    multiplies: bool = True  # False for a part without the GEMM: no GOP/s


def candidates(blocks: list[int]) -> list[Candidate]:
    settings = {"threads spinning": ("session.intra_op.allow_spinning", "1"),
                "dynamic_block_base 4": ("session.dynamic_block_base", "4"),
                "worker pinned to CPU 2": ("session.intra_op_thread_affinities", "2")}
    out = [Candidate("exporter (DynamicQuantizeMatMul)", onnx_runner(exporter_graph))]
    out += [Candidate(f"exporter, {name}", onnx_runner(exporter_graph, (entry,))) for name, entry in settings.items()]
    out += [Candidate(f"MatMulNBits 8-bit block {bl} acc 4", onnx_runner(lambda w, b, bl=bl: nbits_graph(w, b, bl, 4)))
            for bl in blocks]
    out += [Candidate("MatMulNBits 8-bit block 128 acc 0", onnx_runner(lambda w, b: nbits_graph(w, b, 128, 0))),
            Candidate("fp32 MatMul", onnx_runner(float_graph)),
            Candidate("project matmul_q4 q8 (4-bit weights)", project_q4),
            Candidate("part: DynamicQuantizeLinear alone", onnx_runner(quantize_graph), feed=lambda x: x,
                      multiplies=False),
            Candidate("part: MatMulInteger alone (u8 in, int32 out)", onnx_runner(integer_graph), feed=u8)]
    return out


def session(model: bytes, threads: int, settings: tuple[tuple[str, str], ...]) -> ort.InferenceSession:
    """The runtime's vision session options, then the candidate's settings (a repeated key overrides)."""
    options = session_options(threads)
    for key, value in settings:
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--rows", type=int, default=1024, help="activation rows (the ViT's patches)")
    p.add_argument("--blocks", default="32,64,128,256", help="MatMulNBits block sizes")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    cands = candidates([int(b) for b in args.blocks.split(",")])
    refs, runners, feeds = [], [], []  # per shape; runners[shape][candidate], feeds likewise
    for s in VIT_SHAPES:
        w = (rng.standard_normal((s.k, s.n), dtype=np.float32) / np.float32(math.sqrt(s.k)))
        b = 0.02 * rng.standard_normal(s.n, dtype=np.float32)
        x = activation(s.activation, args.rows, s.k, rng)
        refs.append(x.astype(np.float64) @ w.astype(np.float64) + b)
        runners.append([c.make(w, b, args.threads) for c in cands])
        feeds.append([c.feed(x) if c.feed else x for c in cands])
    errors = [[0.0] * len(VIT_SHAPES) for _ in cands]
    for j, ref in enumerate(refs):
        for i, run in enumerate(runners[j]):
            y = run(feeds[j][i])  # also the warm-up
            if not cands[i].feed:
                errors[i][j] = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    load = [os.getloadavg()[0]]
    ms = [[[] for _ in VIT_SHAPES] for _ in cands]  # ms[candidate][shape][round]
    for _ in range(args.rounds):
        for j in range(len(VIT_SHAPES)):
            for i, run in enumerate(runners[j]):
                start = time.perf_counter()
                run(feeds[j][i])
                ms[i][j].append(1e3 * (time.perf_counter() - start))
    load.append(os.getloadavg()[0])
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, {args.rows} rows, {args.rounds} alternating "
          f"rounds, load average {load[0]:.2f} -> {load[1]:.2f}\n")
    print("| candidate | " + " | ".join(f"{s.name} ms" for s in VIT_SHAPES) + " | sum ms | GOP/s | vs exporter "
          "(paired) | rel. error " + " / ".join(s.name for s in VIT_SHAPES) + " |")
    print("|---|" + "---:|" * (len(VIT_SHAPES) + 3) + "---|")
    gop = sum(2 * args.rows * s.k * s.n for s in VIT_SHAPES) / 1e9
    base_sums = [sum(ms[0][j][r] for j in range(len(VIT_SHAPES))) for r in range(args.rounds)]
    for i, c in enumerate(cands):
        medians = [statistics.median(ms[i][j]) for j in range(len(VIT_SHAPES))]
        sums = [sum(ms[i][j][r] for j in range(len(VIT_SHAPES))) for r in range(args.rounds)]
        paired = statistics.median(b / s for b, s in zip(base_sums, sums))
        total = statistics.median(sums)
        rate = f"{gop / total * 1e3:.0f}" if c.multiplies else "—"
        error = "—" if c.feed else " / ".join(f"{e:.2e}" for e in errors[i])
        print(f"| {c.name} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {total:.1f} | {rate} | {paired:.3f}x | "
              f"{error} |")


if __name__ == "__main__":
    main()
