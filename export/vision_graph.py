"""The bundle's vision graph (ViT + adapter + ln_post + proj), written node by node with its weights
streamed into the data file one block at a time (docs/bundle.md, "The vision graph").

    pixels   float32 [N, 3, S, S]   (N dynamic; qwenvl_edge.image.preprocess output)
    features float32 [N, n_queries, output_dim]

No tracer: the nodes are the reference's operations one for one (reference_vision.py), named after
the checkpoint's modules, so the graph of a 48-block ViT-bigG is built while holding one block's
weights. ``tensor(name)`` gives each weight (the checkpoint's name under ``transformer.visual.``, as
float32); every tensor over INLINE_BYTES goes straight to ``vision.onnx.data`` at a page-aligned
offset (onnxruntime can then map it) and the protobuf keeps only the small ones.

Three input-independent tables are computed once here, exactly as the reference computes them (in
torch, float32): the ViT's bicubic 16x16 -> 32x32 position table, the adapter's key positions (the
same resize of its sin-cos table) and the adapter's query projection ((ln_q(query) + pos_embed) W_q
+ b_q, scaled by 1/sqrt(128)), which the reference recomputes on every call from constants.

int8 variant: every weight MatMul is onnxruntime's dynamic-quantization pattern (DynamicQuantizeLinear,
MatMulInteger, Cast, Mul), which its graph optimizer fuses; weights int8 per output channel,
symmetric, computed exactly as onnxruntime's quantize_dynamic(per_channel=True) does. The patch Conv
stays fp32; the ViT's attention products are int8 too (_int8_attention), the adapter's stay fp32
(its output is the features, with no residual stream to dilute the rounding, and they are ~1% of the time).
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

from qwenvl_edge.manifest import Preprocess, VisionInfo

from .config import VisualConfig
from .reference_vision import LN_EPS

OPSET = 17
INPUT, OUTPUT = "pixels", "features"
FILE = "vision.onnx"
DATA_FILE = "vision.onnx.data"
VARIANTS = ("int8", "fp32")
INLINE_BYTES = 1024  # tensors up to this size stay inside the protobuf
PAGE = 4096
EXTERNAL_ABOVE = 64 << 20  # weight bytes above which the graph keeps them in the data file
ADAPTER_HEAD_DIM = 128

# tensor(name) -> the checkpoint's float32 array of ``transformer.visual.<name>``
TensorSource = Callable[[str], np.ndarray]


def quantize_per_channel(weight_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column of a [in, out] MatMul weight: scale = max|w| / 127 (float64,
    stored float32; 1.0 for an all-zero column), q = round-half-even(w / scale). onnxruntime's
    quantize_dynamic(weight_type=QInt8, per_channel=True) gives these same bytes (tested)."""
    w = np.asarray(weight_t, dtype=np.float32)
    absmax = np.maximum(np.abs(np.minimum(w.min(axis=0), 0)), np.maximum(w.max(axis=0), 0))
    scale = (2 * absmax.astype(np.float64) / 254).astype(np.float32)
    scale[scale < np.finfo(np.float32).tiny] = 1.0
    q = np.rint(w / scale)
    np.clip(q, -128, 127, out=q)
    return q.astype(np.int8), scale


def weight_bytes(cfg: VisualConfig, variant: str) -> int:
    """Bytes of the graph's big weights (the projections dominate)."""
    w, m, o = cfg.width, cfg.mlp_width, cfg.output_dim
    per_block = 4 * w * w + 2 * w * m
    projections = cfg.layers * per_block + o * w + 3 * o * o + o * o
    return projections * (1 if variant == "int8" else 4) + 4 * (w * 3 * cfg.patch_size**2 + cfg.n_patches * (w + o))


class GraphWriter:
    """Nodes and initializers of one graph; tensors over INLINE_BYTES are written to the data file
    as they are added, so the weights never pile up in memory."""

    def __init__(self, data_path: str | None, int8: bool):
        self.int8 = int8
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._data = open(data_path, "wb") if data_path else None
        self._data_name = os.path.basename(data_path) if data_path else None
        self._offset = 0
        self._quantized: dict[str, tuple[str, str, str]] = {}  # activation -> its DynamicQuantizeLinear outputs

    def close(self) -> None:
        if self._data is not None:
            self._data.close()

    def constant(self, name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        if self._data is None or array.nbytes <= INLINE_BYTES:
            tensor.raw_data = array.tobytes()
        else:
            pad = -self._offset % PAGE
            self._data.write(b"\0" * pad)
            self._offset += pad
            self._data.write(memoryview(array).cast("B"))
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", self._data_name), ("offset", str(self._offset)),
                               ("length", str(array.nbytes))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            self._offset += array.nbytes
        self.initializers.append(tensor)
        return name

    def shape(self, name: str, dims: list[int]) -> str:
        return self.constant(name, np.asarray(dims, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], name: str, outputs: int = 1, result: str | None = None,
           **attrs) -> str | list[str]:
        """Add a node; returns its output name(s) (``result`` names a single output)."""
        names = [result] if result else [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def linear(self, x: str, name: str, weight_t: np.ndarray, bias: np.ndarray | None = None,
               result: str | None = None) -> str:
        """x @ weight_t (+ bias), weight_t [in, out]; int8 weights per output channel in the int8 graph."""
        last = {"result": result} if bias is None else {}
        if self.int8:
            q, scale = quantize_per_channel(weight_t)
            xq, xs, xz = self._quantize(x)
            wq = self.constant(f"{name}.weight_q8", q)
            ws = self.constant(f"{name}.weight_scale", scale)
            wz = self.constant(f"{name}.weight_zero", np.zeros(q.shape[1], np.int8))
            scales = self.op("Mul", [xs, ws], f"{name}/scales")
            acc = self.op("MatMulInteger", [xq, wq, xz, wz], f"{name}/MatMulInteger")
            y = self.op("Mul", [self.op("Cast", [acc], f"{name}/Cast", to=TensorProto.FLOAT), scales], f"{name}/Mul",
                        **last)
        else:
            y = self.op("MatMul", [x, self.constant(f"{name}.weight_t", weight_t)], f"{name}/MatMul", **last)
        if bias is not None:
            y = self.op("Add", [self.constant(f"{name}.bias", bias), y], f"{name}/Add", result=result)
        return y

    def _quantize(self, x: str) -> tuple[str, str, str]:
        if x not in self._quantized:
            self._quantized[x] = tuple(self.op("DynamicQuantizeLinear", [x], f"{x}/quantize", outputs=3))
        return self._quantized[x]

    def layer_norm(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        return self.op("LayerNormalization", [x, self.constant(f"{name}.weight", weight),
                                              self.constant(f"{name}.bias", bias)],
                       f"{name}/LayerNormalization", axis=-1, epsilon=LN_EPS)


def _vit_block(g: GraphWriter, cfg: VisualConfig, tensor: TensorSource, i: int, x: str) -> str:
    """x + attn(ln_1(x)), then + mlp(ln_2(x)); attention with the per-head interleaved q/k/v rows."""
    p = f"transformer.resblocks.{i}."
    h, dh, w = cfg.heads, cfg.head_dim, cfg.width
    y = g.layer_norm(x, p + "ln_1", tensor(p + "ln_1.weight"), tensor(p + "ln_1.bias"))
    qkv = g.linear(y, p + "attn.in_proj", tensor(p + "attn.in_proj.weight").T, tensor(p + "attn.in_proj.bias"))
    qkv = g.op("Reshape", [qkv, g.shape(p + "attn.heads_shape", [0, 0, h, 3 * dh])], p + "attn/split_heads")
    q, k, v = g.op("Split", [qkv, g.shape(p + "attn.split", [dh, dh, dh])], p + "attn/Split", outputs=3, axis=-1)
    if g.int8:
        context = _int8_attention(g, p + "attn", q, k, v, cfg)
    else:
        q = g.op("Transpose", [q], p + "attn/q", perm=[0, 2, 1, 3])
        q = g.op("Div", [q, g.constant(p + "attn.scale", np.float32(math.sqrt(dh)))], p + "attn/q_scaled")
        k = g.op("Transpose", [k], p + "attn/k", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], p + "attn/v", perm=[0, 2, 1, 3])
        context = _softmax_attention(g, p + "attn", q, k, v, w)
    y = g.linear(context, p + "attn.out_proj", tensor(p + "attn.out_proj.weight").T, tensor(p + "attn.out_proj.bias"))
    x = g.op("Add", [x, y], p + "attn_residual")
    y = g.layer_norm(x, p + "ln_2", tensor(p + "ln_2.weight"), tensor(p + "ln_2.bias"))
    y = g.linear(y, p + "mlp.c_fc", tensor(p + "mlp.c_fc.weight").T, tensor(p + "mlp.c_fc.bias"))
    y = _gelu(g, p + "mlp", y)
    y = g.linear(y, p + "mlp.c_proj", tensor(p + "mlp.c_proj.weight").T, tensor(p + "mlp.c_proj.bias"))
    return g.op("Add", [x, y], p + "mlp_residual")


def _softmax_attention(g: GraphWriter, p: str, q: str, k_t: str, v: str, width: int) -> str:
    """softmax(q k^T) v with heads joined again: q [.., H, Lq, Dh], k_t [.., H, Dh, Lk] -> [N, Lq, width]."""
    probs = g.op("Softmax", [g.op("MatMul", [q, k_t], p + "/scores")], p + "/Softmax", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v], p + "/context")], p + "/join", perm=[0, 2, 1, 3])
    return g.op("Reshape", [context, g.shape(p + ".joined_shape", [0, 0, width])], p + "/joined")


def _symmetric_int8(g: GraphWriter, x: str, name: str) -> tuple[str, str]:
    """x -> (int8 x / scale, scale): one scale for the whole tensor, max |x| / 127."""
    absmax = g.op("ReduceMax", [g.op("Abs", [x], name + "/Abs")], name + "/ReduceMax", keepdims=0)
    absmax = g.op("Max", [absmax, g.constant(name + ".tiny", np.float32(np.finfo(np.float32).tiny))], name + "/Max")
    scale = g.op("Mul", [absmax, g.constant(name + ".per_step", np.float32(1 / 127))], name + "/scale")
    return g.op("QuantizeLinear", [x, scale, g.constant(name + ".zero", np.int8(0))], name + "/QuantizeLinear"), scale


def _int8_attention(g: GraphWriter, p: str, q: str, k: str, v: str, cfg: VisualConfig) -> str:
    """The ViT's softmax(q k^T / sqrt(dh)) v, q k v [N, L, H, Dh] -> [N, L, width], with both products in
    int8 (u8 x s8, the VNNI GEMM, ~3x the fp32 rate on these shapes, benchmarks/NOTES_vision.md): q u8
    with one dynamic scale and zero point (DynamicQuantizeLinear), k and v s8 symmetric with one scale
    each, the probabilities u8 with a scale per row (row max / 255), so that a row spread thin over 1024
    keys keeps its resolution. The heads move to the front after the quantization, in a quarter of the
    bytes. onnxruntime fuses each product with its rescaling (MatMulIntegerToFloat)."""
    h, n = cfg.heads, cfg.n_patches
    qq, qs, qz = g.op("DynamicQuantizeLinear", [q], p + "/q_quantize", outputs=3)
    kq, ks = _symmetric_int8(g, k, p + "/k_quantize")
    vq, vs = _symmetric_int8(g, v, p + "/v_quantize")
    qq = g.op("Transpose", [qq], p + "/q", perm=[0, 2, 1, 3])
    kq = g.op("Transpose", [kq], p + "/k", perm=[0, 2, 3, 1])
    vq = g.op("Transpose", [vq], p + "/v", perm=[0, 2, 1, 3])
    ks = g.op("Mul", [ks, g.constant(p + ".scale", np.float32(1 / math.sqrt(cfg.head_dim)))], p + "/k_scale")
    scores = g.op("Mul", [g.op("Cast", [g.op("MatMulInteger", [qq, kq, qz], p + "/scores")], p + "/scores_Cast",
                               to=TensorProto.FLOAT), g.op("Mul", [qs, ks], p + "/scores_scale")], p + "/scores_Mul")
    probs = g.op("Reshape", [g.op("Softmax", [scores], p + "/Softmax", axis=-1), g.shape(p + ".rows_shape", [-1, n])],
                 p + "/prob_rows")
    row_scale = g.op("Mul", [g.op("ReduceMax", [probs], p + "/prob_max", axes=[1], keepdims=0),
                             g.constant(p + ".u8_step", np.float32(1 / 255))], p + "/prob_scale")
    probs = g.op("Reshape", [g.op("QuantizeLinear", [probs, row_scale], p + "/prob_quantize", axis=0),
                             g.shape(p + ".probs_shape", [-1, h, n, n])], p + "/probs_q")
    scale = g.op("Mul", [g.op("Reshape", [row_scale, g.shape(p + ".row_scale_shape", [-1, h, n, 1])],
                              p + "/prob_scale_rows"), vs], p + "/context_scale")
    context = g.op("Mul", [g.op("Cast", [g.op("MatMulInteger", [probs, vq], p + "/context")], p + "/context_Cast",
                                to=TensorProto.FLOAT), scale], p + "/context_Mul")
    context = g.op("Transpose", [context], p + "/join", perm=[0, 2, 1, 3])
    return g.op("Reshape", [context, g.shape(p + ".joined_shape", [0, 0, cfg.width])], p + "/joined")


def _gelu(g: GraphWriter, p: str, x: str) -> str:
    """Exact erf GELU as x * (1 + erf(x / sqrt 2)) * 0.5 (onnxruntime fuses it into one Gelu)."""
    erf = g.op("Erf", [g.op("Div", [x, g.constant(p + ".sqrt2", np.float32(math.sqrt(2)))], p + "/Div")], p + "/Erf")
    one_plus = g.op("Add", [erf, g.constant(p + ".one", np.float32(1))], p + "/Add")
    return g.op("Mul", [g.op("Mul", [x, one_plus], p + "/Mul"), g.constant(p + ".half", np.float32(0.5))], p + "/Mul_1")


def position_tables(cfg: VisualConfig, tensor: TensorSource) -> dict[str, np.ndarray]:
    """The graph's input-independent tables, computed as the reference computes them (torch, float32)."""
    import torch
    import torch.nn.functional as F

    from .reference_vision import get_abs_pos

    t = {name: torch.from_numpy(tensor(name)) for name in (
        "positional_embedding", "attn_pool.pos_embed", "attn_pool.query", "attn_pool.ln_q.weight",
        "attn_pool.ln_q.bias", "attn_pool.attn.in_proj_weight", "attn_pool.attn.in_proj_bias")}
    d, heads = cfg.output_dim, cfg.adapter_heads
    with torch.no_grad():
        query = F.layer_norm(t["attn_pool.query"], (d,), t["attn_pool.ln_q.weight"], t["attn_pool.ln_q.bias"], LN_EPS)
        wq, bq = t["attn_pool.attn.in_proj_weight"][:d], t["attn_pool.attn.in_proj_bias"][:d]
        q = F.linear(query + t["attn_pool.pos_embed"], wq, bq)
        q = q.view(1, -1, heads, ADAPTER_HEAD_DIM).transpose(1, 2) * (1.0 / math.sqrt(ADAPTER_HEAD_DIM))
        return {"patch_pos": get_abs_pos(t["positional_embedding"], cfg.n_patches).numpy(),
                "key_pos": get_abs_pos(t["attn_pool.pos_embed"], cfg.n_patches).numpy(),
                "adapter_query": q.contiguous().numpy()}


def _adapter(g: GraphWriter, cfg: VisualConfig, tensor: TensorSource, tables: dict[str, np.ndarray], x: str) -> str:
    """Resampler (256 learned queries cross-attend to the patches), ln_post, proj."""
    d, p = cfg.output_dim, "attn_pool."
    heads_shape = g.shape(p + "attn.heads_shape", [0, 0, cfg.adapter_heads, ADAPTER_HEAD_DIM])
    kv = g.linear(x, p + "kv_proj", tensor(p + "kv_proj.weight").T)
    kv = g.layer_norm(kv, p + "ln_kv", tensor(p + "ln_kv.weight"), tensor(p + "ln_kv.bias"))
    w, b = tensor(p + "attn.in_proj_weight"), tensor(p + "attn.in_proj_bias")
    keys = g.op("Add", [kv, g.constant(p + "key_pos", tables["key_pos"])], p + "keys_with_pos")
    k = g.linear(keys, p + "attn.k_proj", w[d : 2 * d].T, b[d : 2 * d])
    k = g.op("Transpose", [g.op("Reshape", [k, heads_shape], p + "attn/k_heads")], p + "attn/k", perm=[0, 2, 3, 1])
    v = g.linear(kv, p + "attn.v_proj", w[2 * d :].T, b[2 * d :])
    v = g.op("Transpose", [g.op("Reshape", [v, heads_shape], p + "attn/v_heads")], p + "attn/v", perm=[0, 2, 1, 3])
    del w, b
    q = g.constant(p + "attn.query_heads", tables["adapter_query"])  # [1, heads, n_queries, 128], scaled
    context = _softmax_attention(g, p + "attn", q, k, v, d)
    y = g.linear(context, p + "attn.out_proj", tensor(p + "attn.out_proj.weight").T, tensor(p + "attn.out_proj.bias"))
    y = g.layer_norm(y, "ln_post", tensor("ln_post.weight"), tensor("ln_post.bias"))
    return g.linear(y, "proj", tensor("proj"), result=OUTPUT)  # x @ proj: proj is already [in, out]


def vision_info(cfg: VisualConfig, files: list[str], variant: str, preprocess: Preprocess,
                parity: dict[str, float] | None = None, parity_images: int = 0) -> VisionInfo:
    """The manifest's record of a graph written by write_graph."""
    return VisionInfo(file=FILE, data_file=DATA_FILE if DATA_FILE in files else None, variant=variant, opset=OPSET,
                      input=INPUT, output=OUTPUT, output_shape=[None, cfg.n_queries, cfg.output_dim],
                      parity=parity or {}, preprocess=preprocess, parity_images=parity_images)


def write_graph(cfg: VisualConfig, tensor: TensorSource, out_dir: str, variant: str = "int8",
                external: bool | None = None, after_block: Callable[[int], None] | None = None) -> list[str]:
    """Write ``vision.onnx`` (+ ``vision.onnx.data``) into ``out_dir``; returns the file names.
    ``after_block(i)`` runs once block i's weights are written (a reader releases its mapped pages
    there); ``external`` forces or forbids the data file (default: above EXTERNAL_ABOVE bytes)."""
    if variant not in VARIANTS:
        raise ValueError(f"vision variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    external = weight_bytes(cfg, variant) > EXTERNAL_ABOVE if external is None else external
    g = GraphWriter(os.path.join(out_dir, DATA_FILE) if external else None, int8=variant == "int8")
    try:
        tables = position_tables(cfg, tensor)
        x = g.op("Conv", [INPUT, g.constant("conv1.weight", tensor("conv1.weight"))], "conv1/Conv",
                 kernel_shape=[cfg.patch_size] * 2, strides=[cfg.patch_size] * 2)
        x = g.op("Reshape", [x, g.shape("patches_shape", [0, cfg.width, -1])], "patches")
        x = g.op("Transpose", [x], "patches_last", perm=[0, 2, 1])  # [N, grid*grid, W], p = row * grid + col
        x = g.op("Add", [x, g.constant("patch_pos", tables["patch_pos"])], "patches_with_pos")
        x = g.layer_norm(x, "ln_pre", tensor("ln_pre.weight"), tensor("ln_pre.bias"))
        for i in range(cfg.layers):
            x = _vit_block(g, cfg, tensor, i, x)
            if after_block is not None:
                after_block(i)
        x = _adapter(g, cfg, tensor, tables, x)
    finally:
        g.close()
    size = cfg.image_size
    graph = helper.make_graph(
        g.nodes, "qwenvl-edge vision", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["images", 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["images", cfg.n_queries, cfg.output_dim])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qwenvl-edge")
    path = os.path.join(out_dir, FILE)
    onnx.save(model, path)
    onnx.checker.check_model(path)  # path-based: checks the external data's locations too
    return [FILE, DATA_FILE] if external else [FILE]
