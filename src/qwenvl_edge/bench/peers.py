"""What a user would run instead, measured the same way, each in its own child process:

- llama.cpp (``llama-cpp-python``) on a GGUF of the same decoder shape (random Q4_0, llama.cpp's
  ``qwen`` architecture): load, prefill and decode rates;
- onnxruntime ``MatMulNBits`` (4-bit, block 128) against our int4 kernel on one 4096 -> 11008 layer,
  one token (decode, weights streamed from memory) and 256 tokens (prefill), fp32 and int8 activations;
- PyTorch eager, fp32 and bf16, on the reference vision graph (ViT + adapter) at full depth;
- MNN (the ``MNN`` package) on the same vision graph, converted as MNN's LLM exporter converts Qwen-VL's
  ``visual``. MNN's prefill and decode are not measured: its exporter (``llmexport``) builds the
  decoder only from the checkpoint's remote modeling code (benchmarks/NOTES_vision.md, "MNN").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
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


MNN_DEPTHS = (4, 8)  # ViT blocks of the two MNN graphs; the full depth is extrapolated per block
# llmexport's conversion of Qwen-VL's visual (its utils/vision.py: quant_bit 16, transformer_fuse)
MNN_CONVERT = ["--allowCustomOp", "--transformerFuse", "--saveExternalData", "--fp16"]


def mnn_vision(visual: dict[str, Any], threads: int, repeats: int, cache: str) -> dict[str, Any]:
    """Seconds per image of MNN on the vision graph of config fields ``visual`` (random weights): our fp32
    ONNX graph of the reference (the operations of the torch.onnx export llmexport makes of ``visual``)
    through MNN's converter with llmexport's options for Qwen-VL (fp16 weights, its transformer fusion),
    run by MNN's CPU backend at normal precision. Timed at MNN_DEPTHS blocks and extrapolated per block
    to the full depth (a full fp32 graph is 7.6 GB; a model no deeper is timed whole):
    full = t2 + (L - d2) (t2 - t1) / (d2 - d1), the samples of the two depths paired in order.
    The converted models are kept in ``cache``, named by their shape."""
    import MNN.expr as F
    import MNN.nn as nn

    from qwenvl_edge.export.config import VisualConfig

    cfg = VisualConfig(**visual)
    runtime = nn.create_runtime_manager(({"backend": "CPU", "numThread": threads, "precision": "normal"},))
    pixels = np.random.default_rng(0).standard_normal((1, 3, cfg.image_size, cfg.image_size), dtype=np.float32)
    depths = MNN_DEPTHS if cfg.layers > MNN_DEPTHS[1] else (cfg.layers,)  # a shallow model: measured whole
    samples = []
    for depth in depths:
        shape = dataclasses.replace(cfg, layers=depth)
        key = hashlib.sha1(json.dumps(dataclasses.asdict(shape), sort_keys=True).encode()).hexdigest()[:10]
        path = os.path.join(cache, f"mnn-vit{depth}x{cfg.width}-fp16-{key}", "vision.mnn")
        if not os.path.exists(path):
            _mnn_convert(shape, path)
        net = nn.load_module_from_file(path, ["pixels"], ["features"], runtime_manager=runtime)
        samples.append(timed(lambda: net.forward(F.const(pixels, list(pixels.shape), F.NCHW)).read(), repeats))
        del net
    if len(depths) == 1:
        return {"mnn_fp16_s": samples[0]}
    (d1, d2), (t1, t2) = depths, samples
    full = [b + (cfg.layers - d2) * (b - a) / (d2 - d1) for a, b in zip(t1, t2)]
    return {"mnn_fp16_s": full, f"mnn_fp16_d{d1}_s": t1, f"mnn_fp16_d{d2}_s": t2}


def _mnn_convert(cfg, path: str) -> None:
    """The fp32 graph of ``cfg`` (random weights) -> ``path`` (+ ``.weight``) by MNN's converter, in a child
    process: the converter prints to the C stdout, which would land after this process's JSON line."""
    from qwenvl_edge.export.random_vision import write_vision
    from qwenvl_edge.export.vision_graph import FILE

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        write_vision(cfg, tmp, "fp32")
        argv = ["mnnconvert", "-f", "ONNX", "--modelFile", os.path.join(tmp, FILE), "--MNNModel", path, *MNN_CONVERT]
        # The converter's extension itself: MNN.tools.mnnconvert, and so the mnnconvert command, imports
        # MNN's usage logger, which pip-installs its own dependencies when they are missing and reports
        # each conversion over the network.
        done = subprocess.run([sys.executable, "-c", f"import _tools; _tools.mnnconvert({argv!r})"],
                              capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"MNN's converter failed on the vision graph:\n{(done.stdout + done.stderr)[-2000:]}")
