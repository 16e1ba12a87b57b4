"""The bundle's vision graph (ViT + adapter, int8 as exported) with random weights at any depth,
without ever holding the full-depth float model.

Exporting 48 random fp32 ViT-bigG blocks through torch and quantizing them would take ~16 GB (7.6 GB
of weights, the tracer's copy, the quantizer's copy). Instead the exporter's own path (FrozenVision,
write_fp32, write_int8) runs on a two-block model of the real width, and the ONNX graph's last block
is then repeated to the full depth: every copy gets the template block's nodes, scales, biases and
norms, and int8 weights of its own from ``fill``. The build holds the int8 graph (1.9 GB at ViT-bigG)
and never a float copy of more than two blocks. Speed does not depend on the weight values; the
graph, the shapes and the operators are those of a real export. Also the PyTorch eager timing of the
same graph, `qwenvl-edge bench`'s PyTorch peer.

Needs the export extra (torch, onnx); used by ``qwenvl_edge.bench``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Callable

import numpy as np

from qwenvl_edge.export.config import VisualConfig

TEMPLATE_DEPTH = 2
# Tensors up to this size stay inside the .onnx protobuf; larger ones go to the data file.
INLINE_BYTES = 1024
PAGE = 4096

# fill(initializer name, template array, block index) -> that block's array (same shape and dtype).
Fill = Callable[[str, np.ndarray, int], np.ndarray]


def random_visual(cfg: VisualConfig, seed: int = 0):
    """The reference ViT + adapter with random weights of realistic scale (unit-variance activations)."""
    import torch

    from qwenvl_edge.export.reference_vision import VisionTransformer, sincos_2d_table

    torch.manual_seed(seed)
    model = VisionTransformer(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("pos_embed"):
                p.copy_(torch.from_numpy(sincos_2d_table(cfg.output_dim, cfg.query_grid)))
            elif p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p) if "ln" in name and name.endswith("weight")
                        else 0.02 * torch.randn_like(p))
            else:
                fan_in = p.shape[0] if name == "proj" else int(np.prod(p.shape[1:]))
                p.copy_(torch.randn_like(p) * fan_in**-0.5)
    return model.eval()


def random_int8(seed: int = 0) -> Fill:
    """Fresh int8 weights per block (spread like per-channel-quantized Gaussians); the rest as the template."""
    def fill(name: str, template: np.ndarray, block: int) -> np.ndarray:
        if template.dtype != np.int8:
            return template
        rng = np.random.default_rng([seed, block, *name.encode()])
        return rng.integers(-40, 41, size=template.shape, dtype=np.int8)
    return fill


def write_vision(cfg: VisualConfig, out_dir: str, fill: Fill | None = None, seed: int = 0) -> list[str]:
    """Write ``vision.onnx`` (+ ``vision.onnx.data``) of ``cfg``'s shape into ``out_dir``, int8 as the
    exporter makes it; returns the file names written."""
    import onnx

    from qwenvl_edge.export.vision_onnx import FILE, write_fp32, write_int8

    depth = min(cfg.layers, TEMPLATE_DEPTH)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".vision-template-") as tmp:
        write_fp32(random_visual(dataclasses.replace(cfg, layers=depth), seed), tmp, external=False)
        template = os.path.join(tmp, "int8.onnx")
        write_int8(os.path.join(tmp, FILE), template)
        if cfg.layers == depth:
            shutil.move(template, os.path.join(out_dir, FILE))
            return [FILE]
        model = onnx.load(template)
    repeat_last_block(model, cfg.layers, fill or random_int8(seed))
    return save_external(model, out_dir)


def _block_names(index: int) -> tuple[str, str]:
    """(scope prefix of block ``index``'s nodes, its output tensor) as the TorchScript exporter names them."""
    prefix = f"/transformer/resblocks.{index}/"
    return prefix, f"{prefix}Add_1_output_0"


def repeat_last_block(model, depth: int, fill: Fill) -> None:
    """Extend the template's ViT to ``depth`` blocks in place by copying its last block."""
    graph = model.graph
    last = TEMPLATE_DEPTH - 1
    prefix, output = _block_names(last)
    _, block_input = _block_names(last - 1)
    # The block: its scope's nodes, except the consumers of its output (the adapter's input quantizer).
    block = [n for n in graph.node if n.name.startswith(prefix) and output not in n.input]
    produced = {o for n in block for o in n.output}
    initializers = {t.name: t for t in graph.initializer}
    if output not in produced:
        raise ValueError(f"vision template: no block output {output!r} (exporter naming changed?)")
    used_outside = {i for n in graph.node if n.name not in {b.name for b in block} for i in n.input}
    constants = {o for n in graph.node if n.op_type == "Constant" for o in n.output}  # shapes, axes: shared
    owned = []
    for name in dict.fromkeys(i for n in block for i in n.input):
        if name in produced or name in constants or name == block_input or name == "":
            continue
        if name not in initializers:
            raise ValueError(f"vision template: block {last} reads {name!r}, neither a weight nor its input")
        if name not in used_outside:
            owned.append(name)

    from onnx import numpy_helper

    template = {name: numpy_helper.to_array(initializers[name]) for name in owned}
    copies, previous = [], output
    for k in range(last + 1, depth):
        scope, out = _block_names(k)
        rename = {name: name.replace(prefix, scope, 1) for name in produced}
        rename.update({name: f"{name}.block{k}" for name in owned})
        rename[block_input] = previous
        for name in owned:
            array = fill(name, template[name], k)
            if array.shape != template[name].shape or array.dtype != template[name].dtype:
                raise ValueError(f"fill changed {name}: {array.dtype}{array.shape}, "
                                 f"want {template[name].dtype}{template[name].shape}")
            graph.initializer.append(numpy_helper.from_array(array, rename[name]))
        for node in block:
            copy = type(node)()
            copy.CopyFrom(node)
            copy.name = node.name.replace(prefix, scope, 1)
            copy.input[:] = [rename.get(i, i) for i in node.input]
            copy.output[:] = [rename.get(o, o) for o in node.output]
            copies.append(copy)
        previous = out
    nodes = list(graph.node)
    at = max(nodes.index(n) for n in block) + 1  # the copies run before anything that reads the output
    for node in nodes[at:]:
        node.input[:] = [previous if i == output else i for i in node.input]
    del graph.node[:]
    graph.node.extend(nodes[:at] + copies + nodes[at:])


def save_external(model, out_dir: str) -> list[str]:
    """Save with every tensor over INLINE_BYTES in one page-aligned ``vision.onnx.data``."""
    import onnx

    from qwenvl_edge.export.vision_onnx import DATA_FILE, FILE

    offset = 0
    with open(os.path.join(out_dir, DATA_FILE), "wb") as data:
        for tensor in model.graph.initializer:
            blob = tensor.raw_data
            if len(blob) <= INLINE_BYTES:
                continue
            pad = -offset % PAGE
            data.write(b"\0" * pad)
            offset += pad
            data.write(blob)
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", DATA_FILE), ("offset", str(offset)), ("length", str(len(blob)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(blob)
    onnx.save(model, os.path.join(out_dir, FILE))
    return [FILE, DATA_FILE]


def eager_seconds(cfg: VisualConfig, threads: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per image of the reference ViT + adapter in eager PyTorch, fp32 then bf16 (converted in
    place: the two copies never coexist in RAM)."""
    import torch

    from qwenvl_edge.bench.timing import timed

    torch.set_num_threads(threads)
    model = random_visual(cfg)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, cfg.image_size, cfg.image_size),
                                                                   dtype=np.float32))
    out = {}
    with torch.inference_mode():
        out["torch_fp32_s"] = timed(lambda: model(x), repeats)
        model.to(torch.bfloat16)
        out["torch_bf16_s"] = timed(lambda: model(x.to(torch.bfloat16)), repeats)
    return out
