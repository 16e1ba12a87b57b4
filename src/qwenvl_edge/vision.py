"""The vision encoder at run time: the bundle's ONNX graph in onnxruntime (no torch).

onnxruntime gets its own intra-op pool of ``threads`` and is told not to spin when idle, so that after
the vision pass its threads sleep instead of competing with the decoder's pool for the same cores.

``prepack``: onnxruntime repacks every int8 weight for its GEMM when the session opens (3.5 s and a
1.9 GB anonymous copy for ViT-bigG; each pass then runs ~10% faster). Without it the session opens in
~0.4 s and the weights stay in the mapped data file (file-backed, reclaimable): the better choice for
one pass, the worse for many (benchmarks/NOTES_export.md, "Cold start").
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from qwenvl_edge.errors import FormatError

INPUT, OUTPUT = "pixels", "features"


def session_options(threads: int | None = None, prepack: bool = True) -> ort.SessionOptions:
    """The vision session's options (benchmarks/profile_vision.py profiles a graph with these same ones)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    options.log_severity_level = 3
    return options


class VisionEncoder:
    def __init__(self, path: str | os.PathLike, threads: int | None = None, prepack: bool = True):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FormatError(f"{path}: the vision model is missing")
        options = session_options(threads, prepack)
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise FormatError(f"{path}: cannot load the vision model ({e})") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT] or [o.name for o in outputs] != [OUTPUT]:
            raise FormatError(f"{path}: expected one input '{INPUT}' and one output '{OUTPUT}', found "
                              f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(d, int) for d in shape[2:]) or shape[2] != shape[3]:
            raise FormatError(f"{path}: input shape {shape} is not [N, 3, S, S]")
        self.image_size = shape[2]
        self.output_dim = outputs[0].shape[-1]

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """pixels float32 [N, 3, S, S] (qwenvl_edge.image.preprocess, stacked) -> features [N, 256, D]."""
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32:
            raise ValueError(f"pixels must be a float32 numpy array, got {getattr(pixels, 'dtype', type(pixels))}")
        s = self.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, s, s) or len(pixels) == 0:
            raise ValueError(f"pixels must have shape [N, 3, {s}, {s}] with N >= 1, got {list(pixels.shape)}")
        if not np.isfinite(pixels).all():
            raise ValueError("pixels contain NaN or infinity")
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(pixels)})[0]
