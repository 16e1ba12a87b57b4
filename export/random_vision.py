"""Random vision weights of realistic scale at any shape, for speed runs and tests: as a tensor source
for the bundle's graph (vision_graph.write_graph, one block at a time, so a ViT-bigG graph is built
without holding it), and as the PyTorch reference module (the `qwenvl-edge bench` PyTorch peer).

Each tensor is drawn from its own seed (the tensor's name), so the graph and the module built from
the same seed hold the same weights, whatever order they are asked for in.

Needs the export extra (torch, onnx); used by ``qwenvl_edge.bench``.
"""

from __future__ import annotations

import numpy as np

from qwenvl_edge.export import names
from qwenvl_edge.export.config import QwenVLConfig, VisualConfig

from .vision_graph import TensorSource, write_graph


def random_tensors(cfg: VisualConfig, seed: int = 0) -> TensorSource:
    """``tensor(name)`` of random weights under the checkpoint's visual names: unit-variance
    activations (projections scaled by fan_in^-1/2), norms near 1, small biases, and the adapter's
    sin-cos position table as the release stores it."""
    from .reference_vision import sincos_2d_table

    shapes = {name[len(names.VISUAL):]: shape
              for name, shape in names.visual_shapes(QwenVLConfig(visual=cfg)).items()}

    def tensor(name: str) -> np.ndarray:
        shape = shapes[name]
        if name == "attn_pool.pos_embed":
            return sincos_2d_table(cfg.output_dim, cfg.query_grid)
        rng = np.random.default_rng([seed, *name.encode()])
        x = rng.standard_normal(shape, dtype=np.float32)
        if len(shape) == 1:
            return 1 + 0.1 * x if "ln" in name and name.endswith("weight") else 0.02 * x
        fan_in = shape[0] if name == "proj" else int(np.prod(shape[1:]))
        return x * np.float32(fan_in**-0.5)

    return tensor


def random_visual(cfg: VisualConfig, seed: int = 0):
    """The reference ViT + adapter (torch, float32) holding random_tensors(cfg, seed)."""
    from .reference_vision import VisionTransformer, load_module

    return load_module(VisionTransformer, cfg, random_tensors(cfg, seed))


def write_vision(cfg: VisualConfig, out_dir: str, variant: str = "int8", seed: int = 0) -> list[str]:
    """The bundle's vision graph of ``cfg``'s shape with random_tensors(cfg, seed); returns the files."""
    return write_graph(cfg, random_tensors(cfg, seed), out_dir, variant)


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
