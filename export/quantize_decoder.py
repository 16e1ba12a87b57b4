"""Quantize the Qwen decoder block by block from a float checkpoint, streaming it from disk.

Only one block's float weights are in RAM at a time (plus the calibration hidden states): the block is
read, quantized, run once more to produce the next block's inputs, and dropped; the caller writes
each block's result as soon as it is yielded. GPTQ runs the five linears in true-sequential order
(kernels.md 2, step 9): c_attn on the ln_1 outputs; attn.c_proj on the attention context computed
with the quantized c_attn; w1 and w2 (one shared Hessian) on the ln_2 outputs after the quantized
attention; mlp.c_proj on ``w1(x) * silu(w2(x))`` of the quantized w1/w2. Only the prefix a linear
needs is recomputed, not the whole block.

Each block also reports, per linear, the output error of GPTQ against round-to-nearest on the same
calibration inputs (trace((Wq - W) H (Wq - W)^T) on a sample of output rows, proportional to the
mean squared output error): the export summary's evidence that GPTQ did its job.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import gptq_format, names
from .checkpoint import CheckpointReader, check_shape
from .gptq import Hessian, gptq_quantize
from .reference_decoder import Block, KVCache, logn_factors, ntk_alpha, rotary_tables

ERROR_ROWS = 256  # output rows sampled for the GPTQ-vs-RTN error estimate


@dataclasses.dataclass
class BlockResult:
    index: int
    linears: dict[str, gptq_format.QuantizedLinear]  # keyed by names.QUANTIZED_LINEARS
    stats: dict


def _load_block(reader: CheckpointReader, i: int) -> Block:
    cfg = reader.config
    prefix = names.block(i)
    state = {}
    for name, shape in names.float_shapes(cfg).items():
        if name.startswith(prefix):
            tensor = reader.get(name)
            check_shape(reader, name, tensor, shape)
            state[name[len(prefix):]] = tensor.to(torch.float32)
    with torch.device("meta"):
        block = Block(cfg)
    block.load_state_dict(state, strict=True, assign=True)
    return block.eval()


class _Positions:
    """Rotary tables, logn factors and the causal mask of one calibration sequence (a fresh prefill)."""

    def __init__(self, cfg, length: int):
        alpha = ntk_alpha(length, cfg.seq_length) if cfg.use_dynamic_ntk else 1.0
        positions = torch.arange(length)
        self.cos, self.sin = rotary_tables(positions, cfg.head_dim, cfg.rotary_emb_base, alpha)
        self.logn = logn_factors(positions, cfg.seq_length) if cfg.use_logn_attn else None
        allowed = torch.ones(length, length, dtype=torch.bool).tril()
        self.mask = torch.zeros(length, length).masked_fill(~allowed, torch.finfo(torch.float32).min)
        self.alpha = alpha

    def attention(self, block: Block, x: torch.Tensor) -> torch.Tensor:
        empty = x.new_zeros(1, 0, block.attn.heads, block.attn.head_dim)
        cache = KVCache([empty], [empty], self.alpha)
        return block.attn(x, self.cos, self.sin, self.logn, self.mask if x.shape[1] > 1 else None, cache, 0)


def _error(w: torch.Tensor, wq: np.ndarray, h: torch.Tensor, rows: torch.Tensor) -> float:
    d = torch.from_numpy(wq)[rows] - w[rows]
    return float(((d @ h) * d).sum())


def _set(linear: torch.nn.Linear, weight: np.ndarray) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))


def quantize_decoder(reader: CheckpointReader, calibration: list[torch.Tensor] | None, *, method: str = "gptq",
                     sym: bool = True, act_order: bool = False, damp_percent: float = 0.01, group_size: int = 128,
                     progress: bool = False) -> Iterator[BlockResult]:
    """Yield every block's five quantized linears, block 0 first. ``calibration``: the decoder's input
    embeddings, one float32 [1, T, hidden] tensor per sequence (GPTQ only)."""
    cfg = reader.config
    if reader.quantization is not None:
        raise ValueError("the checkpoint is already GPTQ-quantized: import it instead of quantizing again")
    if method not in ("gptq", "rtn"):
        raise ValueError(f"method must be 'gptq' or 'rtn', not {method!r}")
    if method == "gptq" and not calibration:
        raise ValueError("GPTQ needs calibration inputs")
    from tqdm import tqdm

    bar = tqdm(total=cfg.num_hidden_layers, desc=f"decoder ({method})", unit="block", disable=not progress,
               file=sys.stderr, leave=False)
    xs = [x.to(torch.float32) for x in calibration] if method == "gptq" else []
    positions = {x.shape[1]: _Positions(cfg, x.shape[1]) for x in xs}
    with torch.no_grad():
        for i in range(cfg.num_hidden_layers):
            block = _load_block(reader, i)
            if method == "rtn":
                linears = {m: gptq_format.quantize_linear(_module(block, m).weight.numpy(), group_size, sym=sym)
                           for m in names.QUANTIZED_LINEARS}
                yield BlockResult(i, linears, {"block": i})
            else:
                linears, stats = _gptq_block(block, xs, positions, sym, act_order, damp_percent, group_size, i)
                xs = [_run_block(block, x, positions[x.shape[1]]) for x in xs]  # the next block's inputs
                median = float(np.median([s["gptq_over_rtn"] for s in stats]))
                bar.set_postfix(gptq_over_rtn=f"{median:.2f}")
                yield BlockResult(i, linears, {"block": i, "layers": stats, "gptq_over_rtn": median})
            del block
            reader.release()
            bar.update(1)
    bar.close()


def _module(block: Block, dotted: str) -> torch.nn.Linear:
    module = block
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def _run_block(block: Block, x: torch.Tensor, pos: _Positions) -> torch.Tensor:
    h = x + pos.attention(block, block.ln_1(x))
    return h + block.mlp(block.ln_2(h))


def _gptq_block(block: Block, xs, positions, sym, act_order, damp_percent, group_size, index):
    linears: dict[str, gptq_format.QuantizedLinear] = {}
    stats = []

    def quantize(modules: tuple[str, ...], hessian: Hessian) -> None:
        for m in modules:
            linear = _module(block, m)
            w = linear.weight.detach().clone()
            name = f"{names.block(index)}{m}"
            result = gptq_quantize(w, hessian.h, group_size=group_size, sym=sym, act_order=act_order,
                                   damp_percent=damp_percent, name=name)
            wq = result.dequantized()
            rtn = gptq_format.dequantize(gptq_format.quantize_linear(w.numpy(), group_size, sym=sym))
            rows = torch.linspace(0, w.shape[0] - 1, min(ERROR_ROWS, w.shape[0])).long()
            e_gptq, e_rtn = _error(w, wq, hessian.h, rows), _error(w, rtn, hessian.h, rows)
            stats.append({"layer": name, "loss": result.loss, "gptq_over_rtn": e_gptq / e_rtn if e_rtn > 0 else 1.0})
            linears[m] = result.linear(v1=True)
            _set(linear, wq)

    def hessian_of(inputs) -> Hessian:
        h = None
        for x in inputs:
            h = h or Hessian(x.shape[-1])
            h.add(x)
        return h

    quantize(("attn.c_attn",), hessian_of(block.ln_1(x) for x in xs))
    contexts = Hessian(xs[0].shape[-1])  # c_proj's inputs: the attention context, seen through a hook
    hook = block.attn.c_proj.register_forward_pre_hook(lambda module, args: contexts.add(args[0]))
    for x in xs:
        positions[x.shape[1]].attention(block, block.ln_1(x))
    hook.remove()
    quantize(("attn.c_proj",), contexts)
    attended = [x + positions[x.shape[1]].attention(block, block.ln_1(x)) for x in xs]
    normed = [block.ln_2(h) for h in attended]
    quantize(("mlp.w1", "mlp.w2"), hessian_of(normed))
    mlp = block.mlp
    quantize(("mlp.c_proj",), hessian_of(mlp.w1(y) * F.silu(mlp.w2(y)) for y in normed))
    return linears, stats
