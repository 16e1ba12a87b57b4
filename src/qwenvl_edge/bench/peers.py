"""What a user would run instead, measured the same way, each in its own child process:

- llama.cpp (``llama-cpp-python``) on a GGUF of the same decoder shape (random Q4_0, llama.cpp's
  ``qwen`` architecture): load, prefill and decode rates;
- onnxruntime ``MatMulNBits`` (4-bit, block 128) against our int4 kernel on one 4096 -> 11008 layer,
  one token (decode, weights streamed from memory) and 256 tokens (prefill), fp32 and int8 activations;
- PyTorch eager, fp32 and bf16, on the reference vision graph (ViT + adapter) at full depth.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .timing import timed

LAYER = (4096, 11008)  # k inputs, n outputs: Qwen-7B's w1 / w2
LAYER_TOKENS = (1, 256)
COPIES = 24  # x 22.5 MB of 4-bit weights: more than this machine's 480 MiB last-level cache


def llama_cpp(path: str, threads: int, prompt: int, gen: int, repeats: int) -> dict[str, Any]:
    import llama_cpp as lc

    start = time.perf_counter()
    llm = lc.Llama(path, n_ctx=prompt + gen + 8, n_threads=threads, n_threads_batch=threads, n_batch=prompt,
                   n_ubatch=prompt, verbose=False)
    load = time.perf_counter() - start
    ids = [int(t) for t in np.random.default_rng(0).integers(300, 151643, prompt)]
    out: dict[str, Any] = {"load_s": [load], "prefill_tok_s": [], "decode_tok_s": []}
    for r in range(repeats + 1):  # the first round warms up and faults the weights in
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(gen):
            llm.eval([300 + i])
        if r:
            out["prefill_tok_s"].append(prompt / prefill)
            out["decode_tok_s"].append(gen / (time.perf_counter() - start))
    return out


def _nbits_session(blocks: np.ndarray, scales: np.ndarray, accuracy_level: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = LAYER
    node = helper.make_node("MatMulNBits", ["a", "b", "scales"], ["y"], domain="com.microsoft", K=k, N=n, bits=4,
                            block_size=128, accuracy_level=accuracy_level)
    graph = helper.make_graph([node], "layer", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
                              initializer=[numpy_helper.from_array(blocks, "b"), numpy_helper.from_array(scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ours_layer(blocks: np.ndarray, threads: int, mode: str):
    """Our kernel with its output tiles split over a pool of ``threads`` (as the decoder splits them)."""
    from qwenvl_edge._core import kernels

    k, n = LAYER
    return lambda x: kernels.matmul_q4(x, blocks, k, n, mode=mode, threads=threads)


def int4_layer(threads: int, repeats: int) -> dict[str, Any]:
    """Milliseconds per layer, ours and MatMulNBits, for each token count and activation precision.
    One token runs through COPIES distinct copies of the layer in turn, more bytes than the last-level
    cache holds, so its weights come from memory as in decode; 256 tokens (compute-bound) use one copy."""
    from . import synthetic_decoder

    k, n = LAYER
    rng = np.random.default_rng(0)
    ours_blocks = [synthetic_decoder.random_blocks(rng, (n // 16, k // 128, synthetic_decoder.BLOCK_DTYPE.itemsize)) for _ in range(COPIES)]
    nbits = [rng.integers(0, 256, (n, k // 128, 64), dtype=np.uint8) for _ in range(COPIES)]
    scales = np.full(n * k // 128, 0.01, np.float32)
    out: dict[str, Any] = {}
    for activations, mode, level in (("fp32", "exact", 1), ("int8", "q8", 4)):
        sessions = [_nbits_session(b, scales, level, threads) for b in nbits]
        engines = {"ours": [_ours_layer(b, threads, mode) for b in ours_blocks],
                   "onnxruntime": [lambda x, s=s: s.run(None, {"a": x}) for s in sessions]}
        for m in LAYER_TOKENS:
            x = rng.standard_normal((m, k), dtype=np.float32)
            for name, layers in engines.items():
                layers = layers if m == 1 else layers[:1]
                samples = timed(lambda: [layer(x) for layer in layers], max(repeats, 5))
                out[f"{name}_{activations}_m{m}_ms"] = [1e3 * t / len(layers) for t in samples]
        del sessions, engines
    return out


def torch_vision(visual: dict[str, Any], threads: int, repeats: int) -> dict[str, Any]:
    """Seconds per image of the reference ViT + adapter (config fields ``visual``) in eager PyTorch,
    fp32 and bf16 (the export extra's torch)."""
    from qwenvl_edge.export.config import VisualConfig
    from qwenvl_edge.export.random_vision import eager_seconds

    return eager_seconds(VisualConfig(**visual), threads, repeats)
