"""The machine's roof, measured in the same run as the figures it bounds.

- read bandwidth: numpy's max over a 2 GiB array split over the run's threads (numpy releases the GIL),
  best of several passes: what decode, which reads every weight once per token, can reach at most. The
  max is numpy's lightest SIMD reduction; a sum's pairwise adds made the reading CPU-bound on a weak or
  busy core (one busy core here: 3.7-5.4 GB/s summing, 7.2-7.3 taking the max), and a decode then
  read faster than its "roof". A VM's bandwidth also moves from minute to minute, so the bench reads it
  again right after each decode sample and holds the decode to the best reading (runner.py, ours.py);
- fp32 and int8 GEMM rate: onnxruntime's MatMul and MatMulInteger (u8 x s8: VNNI / dot-product
  units, or AMX tiles where MLAS finds them) on [M, K] x [K, N] = [1024, 4096] x [4096, 4096], with the run's thread count: what the vision
  graph and an int8-activation prefill can reach at most on this machine with a production GEMM.
"""

from __future__ import annotations

import threading
import time

import numpy as np

GEMM_SHAPE = (1024, 4096, 4096)


def read_bandwidth_gb_s(threads: int, gib: float = 2.0, passes: int = 5) -> float:
    a = np.ones(int(gib * 2**30) // 4, dtype=np.float32)
    parts = np.array_split(a, threads)
    best = 0.0
    for _ in range(passes):
        workers = [threading.Thread(target=np.maximum.reduce, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, a.nbytes / (time.perf_counter() - start) / 1e9)
    return best


def _matmul_session(int8: bool, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m, k, n = GEMM_SHAPE
    if int8:
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        inputs = [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]),
                  helper.make_tensor_value_info("b", TensorProto.INT8, [k, n])]
        output = helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])
    else:
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, s) for x, s in (("a", [m, k]), ("b", [k, n]))]
        output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
    model = helper.make_model(helper.make_graph([node], "gemm", inputs, [output]),
                              opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def gemm_gops(int8: bool, threads: int, repeats: int = 5) -> float:
    """Best GFLOP/s (fp32) or GOP/s (int8 multiply-adds counted as 2 ops) over ``repeats`` runs."""
    m, k, n = GEMM_SHAPE
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray]
    if int8:
        feeds = {"a": rng.integers(0, 256, (m, k), dtype=np.uint8), "b": rng.integers(-128, 128, (k, n), dtype=np.int8)}
    else:
        feeds = {"a": rng.standard_normal((m, k), dtype=np.float32), "b": rng.standard_normal((k, n), dtype=np.float32)}
    session = _matmul_session(int8, threads)
    session.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def measure(threads: int) -> dict[str, float]:
    return {"read_gb_s": read_bandwidth_gb_s(threads), "fp32_gflop_s": gemm_gops(False, threads),
            "int8_gop_s": gemm_gops(True, threads)}
