"""The vision encoder + adapter (ViT, resampler, ln_post, proj) as one ONNX graph, fp32 or int8.

    pixels   float32 [N, 3, 448, 448]   (N dynamic; qwenvl_edge.image.preprocess output)
    features float32 [N, 256, hidden]

Built from the PyTorch reference (reference_vision) loaded with the checkpoint's ``transformer.visual.*``
weights at float32. The two bicubic position tables (the ViT's 16x16 -> 32x32 resize, spec 1.3, and the
resampler's key positions, spec 2.1) are computed once, exactly as the reference computes them, and
baked in as constants: the graph has no Resize. Exported with torch's TorchScript-based exporter
(opset 17; the dynamo exporter needs onnxscript, which the export extra does not carry). A model over
2 GB keeps its weights in one external file, ``vision.onnx.data``.

int8: onnxruntime's dynamic quantization of the weight MatMuls/Gemms (int8 per-channel weights, uint8
activations quantized per call; the patch Conv and the activation x activation attention MatMuls stay
fp32). The fidelity is measured as the cosine of the image features against fp32.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointReader, check_shape
from .config import VisualConfig
from . import names
from .reference_vision import VisionTransformer, get_abs_pos

OPSET = 17
INPUT, OUTPUT = "pixels", "features"
FILE = "vision.onnx"
DATA_FILE = "vision.onnx.data"
PROTOBUF_LIMIT = 2_000_000_000  # bytes of weights above which they go to the external data file


class FrozenVision(nn.Module):
    """The reference's forward with the two position tables precomputed (traced as constants)."""

    def __init__(self, visual: VisionTransformer):
        super().__init__()
        self.v = visual
        n = visual.cfg.n_patches
        with torch.no_grad():
            self.register_buffer("patch_pos", get_abs_pos(visual.positional_embedding, n).detach().clone())
            self.register_buffer("key_pos", get_abs_pos(visual.attn_pool.pos_embed, n).detach().clone())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # The same steps as VisionTransformer.forward and Resampler.forward (checked by the parity tests).
        v, pool = self.v, self.v.attn_pool
        x = v.conv1(pixels).flatten(2).transpose(1, 2) + self.patch_pos
        x = v.transformer(v.ln_pre(x))
        kv = pool.ln_kv(pool.kv_proj(x))
        q = pool.ln_q(pool.query).unsqueeze(0).expand(x.shape[0], -1, -1)
        x = pool.attn(q + pool.pos_embed, kv + self.key_pos, kv)
        return v.ln_post(x) @ v.proj


def load_visual(reader: CheckpointReader) -> VisionTransformer:
    """The reference vision module at float32 with the checkpoint's visual weights (only those)."""
    cfg = reader.config
    prefix = "transformer.visual."
    shapes = {n: s for n, s in names.float_shapes(cfg).items() if n.startswith(prefix)}
    state = {}
    for name, shape in shapes.items():
        tensor = reader.get(name)
        check_shape(reader, name, tensor, shape)
        state[name[len(prefix):]] = tensor.to(torch.float32)
    with torch.device("meta"):
        visual = VisionTransformer(cfg.visual)
    visual.load_state_dict(state, strict=True, assign=True)
    return visual.eval()


def _export(module: nn.Module, cfg: VisualConfig, path: str) -> None:
    dummy = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    with warnings.catch_warnings():
        # The TorchScript exporter announces its own deprecation (torch >= 2.9) and warns about tracing
        # a Python float divisor; neither changes the graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (dummy,), path, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "images"}, OUTPUT: {0: "images"}},
                          do_constant_folding=True)


def _single_data_file(src: str, dst: str, data_name: str) -> None:
    """Re-point every external tensor of ``src`` (one file per tensor, as the exporter writes big
    models) into one ``data_name`` file next to ``dst``, streaming tensor by tensor."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(src, load_external_data=False)
    base = os.path.dirname(src)
    offset = 0
    with open(os.path.join(os.path.dirname(dst), data_name), "wb") as data:
        for tensor in model.graph.initializer:
            if not uses_external_data(tensor):
                continue
            info = ExternalDataInfo(tensor)
            with open(os.path.join(base, info.location), "rb") as f:
                f.seek(info.offset or 0)
                blob = f.read(info.length) if info.length else f.read()
            pad = -offset % 4096  # page-aligned, so onnxruntime can map each tensor
            data.write(b"\0" * pad)
            offset += pad
            data.write(blob)
            del tensor.external_data[:]
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(blob)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(blob)
    onnx.save(model, dst)


def write_fp32(visual: VisionTransformer, out_dir: str, external: bool | None = None) -> list[str]:
    """Export the fp32 graph into ``out_dir``; returns the file names written. ``external`` forces
    (or forbids) the external data file; by default it is used above 2 GB of weights."""
    import onnx

    weight_bytes = sum(p.numel() * 4 for p in visual.parameters())
    external = weight_bytes > PROTOBUF_LIMIT if external is None else external
    path = os.path.join(out_dir, FILE)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".onnx-") as tmp:
        raw = os.path.join(tmp, FILE)
        _export(FrozenVision(visual), visual.cfg, raw)
        if external:
            if len(os.listdir(tmp)) == 1:  # small model: the exporter kept the weights inline
                model = onnx.load(raw)
                onnx.save(model, raw, save_as_external_data=True, all_tensors_to_one_file=False,
                          size_threshold=1024)
                del model
            _single_data_file(raw, path, DATA_FILE)
        else:
            shutil.move(raw, path)
    onnx.checker.check_model(path)  # path-based: works for models over 2 GB
    return [FILE, DATA_FILE] if external else [FILE]


def write_int8(fp32_path: str, out_path: str) -> None:
    """Dynamic int8 quantization of the weight MatMuls/Gemms (per output channel, signed int8 weights;
    activations quantized to uint8 at run time, the u8 x s8 path of VNNI / AVX2 / NEON dot units)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    size = os.path.getsize(fp32_path)
    data = os.path.join(os.path.dirname(fp32_path), DATA_FILE)
    big = os.path.exists(data) and size + os.path.getsize(data) > PROTOBUF_LIMIT
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about a pre-processing pass to the root logger
    try:
        quantize_dynamic(fp32_path, out_path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                         op_types_to_quantize=["MatMul", "Gemm"], use_external_data_format=big,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


def compare(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """``max_rel_err`` = max |got - want| / max |want|; ``cosine_min``/``cosine_mean``: the cosine of
    each image's flattened features, over the images."""
    a, b = got.reshape(len(got), -1).astype(np.float64), want.reshape(len(want), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"max_rel_err": float(np.abs(a - b).max() / np.abs(b).max()), "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean())}


def encode(path: str, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
    from qwenvl_edge.vision import VisionEncoder

    return VisionEncoder(path, threads=threads).encode(pixels)


def check_images(size: int) -> np.ndarray:
    """Varied preprocessed pictures for the parity checks: flat regions with edges, a gradient, text
    strokes, and noise (the hardest case for int8)."""
    from PIL import Image, ImageDraw

    from qwenvl_edge.image import preprocess

    rng = np.random.default_rng(0)
    blocks = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((640, 480), Image.NEAREST)
    ramp = Image.fromarray(np.linspace(0, 255, 600, dtype=np.float32).astype(np.uint8)[None, :].repeat(400, 0))
    page = Image.new("RGB", (500, 700), (250, 250, 245))
    draw = ImageDraw.Draw(page)
    for row in range(20):
        draw.text((20, 20 + 30 * row), "The quick brown fox 0123456789" [: 10 + row], fill=(10, 10, 10))
    noise = rng.integers(0, 255, (448, 448, 3), dtype=np.uint8)
    return np.stack([preprocess(im, size) for im in (blocks, ramp, page, noise)])


def export_vision(reader: CheckpointReader, out_dir: str, variant: str = "int8", progress: bool = False,
                  external: bool | None = None, threads: int | None = None) -> dict:
    """Write the bundle's vision model into ``out_dir`` and check it; returns the manifest's vision
    section (file names, graph interface, variant, parity figures)."""
    if variant not in ("int8", "fp32"):
        raise ValueError(f"vision variant must be 'int8' or 'fp32', not {variant!r}")
    say: Callable[[str], None] = (lambda m: print(f"vision: {m}", flush=True)) if progress else (lambda m: None)
    cfg = reader.config.visual
    say(f"loading ViT ({cfg.layers} blocks of width {cfg.width}) and adapter at float32")
    visual = load_visual(reader)
    pixels = check_images(cfg.image_size)
    with torch.no_grad():
        reference = visual(torch.from_numpy(pixels)).numpy()
    if variant == "fp32":
        say("exporting the fp32 graph")
        write_fp32(visual, out_dir, external)
        del visual
        checks = {f"{k}_vs_reference": v for k, v in compare(encode(os.path.join(out_dir, FILE), pixels, threads),
                                                               reference).items()}
    else:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".fp32-") as tmp:
            say("exporting the fp32 graph")
            write_fp32(visual, tmp, external)
            del visual
            fp32_features = encode(os.path.join(tmp, FILE), pixels, threads)
            say("quantizing the weights to int8")
            write_int8(os.path.join(tmp, FILE), os.path.join(out_dir, FILE))
        int8_features = encode(os.path.join(out_dir, FILE), pixels, threads)
        checks = {"fp32_max_rel_err_vs_reference": compare(fp32_features, reference)["max_rel_err"],
                  **{f"{k}_vs_fp32": v for k, v in compare(int8_features, fp32_features).items()}}
    files = [f for f in (FILE, DATA_FILE) if os.path.exists(os.path.join(out_dir, f))]
    return {"file": FILE, "data_file": DATA_FILE if DATA_FILE in files else None, "variant": variant,
            "opset": OPSET, "input": INPUT, "output": OUTPUT, "output_shape": [None, cfg.n_queries, cfg.output_dim],
            "parity": checks, "parity_images": len(pixels)}

