"""Quantize the Qwen decoder block by block from a float checkpoint, streaming it from disk.

    for block in quantize_decoder(CheckpointReader(src), embeddings, method="gptq"):
        write(block.index, block.linears)      # names.QUANTIZED_LINEARS -> auto-gptq v1 tensors

RAM holds one block's float32 weights (0.8 GB at Qwen-7B dims), the calibration hidden states
(float32 [1, T, hidden] per sequence), the attention contexts or FFN activations of the step in
progress, and one Hessian with its inverse factor (2 x 485 MB for mlp.c_proj). Each block is read,
quantized linear by linear while the calibration states go through it, yielded and dropped.

GPTQ runs the five linears in true-sequential order (docs/model.md 8.9), each on the inputs the
fully quantized model gives it:
  attn.c_attn   on ln_1(x);
  attn.c_proj   on the attention context computed with the quantized c_attn;
  mlp.w1, w2    on ln_2(x + attention), with the quantized attention (one shared Hessian);
  mlp.c_proj    on w1(y) * silu(w2(y)) of the quantized w1, w2.
A later linear never changes an earlier one's inputs, so each linear runs once, quantized, on the
calibration set: a block costs one forward pass (plus w1 and w2 again when their activations exceed
GATED_BYTES), not the five of a loop that re-runs the whole block per step. Every calibration
sequence is a fresh causal prefill, with the RoPE tables, dynamic-NTK alpha and logn factors of its
length, through the reference modules.

Per linear the stats give the GPTQ loss and the output MSE of GPTQ and of round-to-nearest on the
calibration inputs: with D = Wq - W and H = (2/n) sum x x^T over the n tokens, the mean over tokens
and outputs of (D x)^2 is trace(D H D^T) / (2 outputs), here summed over ERROR_ROWS evenly spaced
output rows.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import gptq_format, names
from .checkpoint import CheckpointReader, check_shape
from .config import QwenVLConfig
from .gptq import Hessian, gptq_quantize
from .reference_decoder import Attention, Block, KVCache, logn_factors, ntk_alpha, rotary_tables

ERROR_ROWS = 256  # output rows sampled for the GPTQ / round-to-nearest output errors
# mlp.c_proj's inputs (hidden x 2.7 per token) are kept between the Hessian pass and the output pass
# up to this size; beyond it w1 and w2 run again instead (+45% of a block's forward).
GATED_BYTES = 1 << 30


@dataclasses.dataclass
class BlockResult:
    index: int
    linears: dict[str, gptq_format.QuantizedLinear]  # names.QUANTIZED_LINEARS -> auto-gptq v1 tensors
    stats: dict[str, Any]  # JSON-ready, see quantize_decoder


def quantize_decoder(reader: CheckpointReader, calibration: list[torch.Tensor] | None, *, method: str = "gptq",
                     sym: bool = True, act_order: bool = False, damp_percent: float = 0.01, group_size: int = 128,
                     progress: bool = False) -> Iterator[BlockResult]:
    """Yield every block's five quantized linears, block 0 first, each as soon as it is done.

    calibration: the decoder's input embeddings, one float tensor [1, T, hidden] per sequence (GPTQ
    only; ignored by "rtn"). They are replaced by the generator's own hidden states after block 0, so
    a caller that drops its list frees them. method: "gptq" or "rtn" (round-to-nearest, no
    calibration). progress: a tqdm bar on stderr, one step per block.
    BlockResult.stats: {"block": i, "seconds": {phase: s} for the phases "load", "forward",
    "hessian", "solve"}, and for GPTQ "layers", one {"layer", "loss", "damp_percent", "output_mse",
    "output_mse_rtn", "gptq_over_rtn"} per linear, and "gptq_over_rtn", their median.
    """
    cfg = reader.config
    if reader.quantization is not None:
        raise ValueError("the checkpoint is already GPTQ-quantized: import it instead of quantizing again")
    if method not in ("gptq", "rtn"):
        raise ValueError(f"method must be 'gptq' or 'rtn', not {method!r}")
    xs: list[torch.Tensor] = []
    if method == "gptq":
        if not calibration:
            raise ValueError("GPTQ needs calibration inputs")
        for n, x in enumerate(calibration):
            if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] != cfg.hidden_size:
                raise ValueError(f"calibration input {n} has shape {list(x.shape)}; expected [1, T, "
                                 f"{cfg.hidden_size}] (input embeddings)")
        xs = [x.detach().to(torch.float32) for x in calibration]
    del calibration  # the hidden states replace the embeddings block after block

    options = dict(group_size=group_size, sym=sym, act_order=act_order, damp_percent=damp_percent)
    bar = tqdm(total=cfg.num_hidden_layers, desc=f"decoder ({method})", unit="block", disable=not progress,
               file=sys.stderr, leave=False)
    for i in range(cfg.num_hidden_layers):
        clock = _Clock()
        if method == "rtn":
            weights = {m: _read_weight(reader, i, m) for m in names.QUANTIZED_LINEARS}
            reader.release()
            clock.lap("load")
            linears = {m: gptq_format.quantize_linear(w, group_size, sym=sym) for m, w in weights.items()}
            del weights
            clock.lap("solve")
            stats: dict[str, Any] = {"block": i}
        else:
            block = _load_block(reader, i)
            reader.release()  # the block is copied to float32; mapped pages of the file would stay in RSS
            clock.lap("load")
            linears, layers = _gptq_block(block, xs, cfg, clock, names.block(i), options)
            del block
            median = float(np.median([layer["gptq_over_rtn"] for layer in layers]))
            stats = {"block": i, "layers": layers, "gptq_over_rtn": median}
            bar.set_postfix(gptq_over_rtn=f"{median:.2f}")
        stats["seconds"] = clock.seconds
        bar.update(1)
        yield BlockResult(i, linears, stats)
    bar.close()


class _Clock:
    """Seconds per phase, each lap charged to the phase named."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


def _read_weight(reader: CheckpointReader, i: int, module: str) -> np.ndarray:
    name = f"{names.block(i)}{module}.weight"
    tensor = reader.get(name)
    check_shape(reader, name, tensor, names.linear_shape(reader.config, module))
    return tensor.to(torch.float32).numpy()


def _load_block(reader: CheckpointReader, i: int) -> Block:
    """Block i in float32, from its own tensors only."""
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
    return block.eval().requires_grad_(False)


def _context(attn: Attention, x: torch.Tensor, cfg: QwenVLConfig) -> torch.Tensor:
    """The attention output before c_proj, [1, T, hidden], of x as a fresh causal prefill (RoPE with
    the dynamic-NTK alpha of its length, logn factors, causal mask), as reference_decoder.Decoder
    computes it."""
    t = x.shape[1]
    positions = torch.arange(t)
    alpha = ntk_alpha(t, cfg.seq_length) if cfg.use_dynamic_ntk else 1.0
    cos, sin = rotary_tables(positions, cfg.head_dim, cfg.rotary_emb_base, alpha)
    logn = logn_factors(positions, cfg.seq_length) if cfg.use_logn_attn else None
    mask = None
    if t > 1:
        allowed = torch.ones(t, t, dtype=torch.bool).tril()
        mask = torch.zeros(t, t).masked_fill(~allowed, torch.finfo(torch.float32).min)
    empty = x.new_zeros(x.shape[0], 0, attn.heads, attn.head_dim)
    c_proj, attn.c_proj = attn.c_proj, nn.Identity()  # the module's forward, stopped before c_proj
    try:
        return attn(x, cos, sin, logn, mask, KVCache([empty], [empty], alpha), 0)
    finally:
        attn.c_proj = c_proj


def _module(block: Block, dotted: str) -> nn.Linear:
    module = block
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


@torch.no_grad()
def _gptq_block(block: Block, xs: list[torch.Tensor], cfg: QwenVLConfig, clock: _Clock, prefix: str,
                options: dict) -> tuple[dict[str, gptq_format.QuantizedLinear], list[dict[str, Any]]]:
    """Quantize one block in true-sequential order; xs (the block's inputs) become its outputs, in
    place. Returns the packed linears and per-linear stats."""
    attn, mlp = block.attn, block.mlp
    linears: dict[str, gptq_format.QuantizedLinear] = {}
    layers: list[dict[str, Any]] = []

    def hessian_of(inputs: Iterable[torch.Tensor], width: int, keep: list | None = None) -> Hessian:
        hessian = Hessian(width)
        for x in inputs:  # each x is computed (forward) as the loop asks for it
            clock.lap("forward")
            hessian.add(x)
            if keep is not None:
                keep.append(x)
            clock.lap("hessian")
        return hessian

    def solve(modules: tuple[str, ...], hessian: Hessian) -> None:
        for m in modules:
            linear = _module(block, m)
            result = gptq_quantize(linear.weight, hessian.h, name=prefix + m, **options)
            mse, mse_rtn = _output_errors(linear.weight, result.weight, hessian.h, options)
            layers.append({"layer": prefix + m, "loss": result.loss, "damp_percent": result.damp_percent,
                           "output_mse": mse, "output_mse_rtn": mse_rtn,
                           "gptq_over_rtn": mse / mse_rtn if mse_rtn > 0 else 1.0})
            linears[m] = result.linear(v1=True)
            linear.weight.copy_(result.weight)
        clock.lap("solve")

    d = cfg.hidden_size
    solve(("attn.c_attn",), hessian_of((block.ln_1(x) for x in xs), d))
    contexts: list[torch.Tensor] = []
    solve(("attn.c_proj",), hessian_of((_context(attn, block.ln_1(x), cfg) for x in xs), d, contexts))
    for j, context in enumerate(contexts):
        xs[j] = xs[j] + attn.c_proj(context)
    del contexts
    clock.lap("forward")
    solve(("mlp.w1", "mlp.w2"), hessian_of((block.ln_2(x) for x in xs), d))

    def gated(x: torch.Tensor) -> torch.Tensor:
        y = block.ln_2(x)
        return mlp.w1(y) * F.silu(mlp.w2(y))

    tokens = sum(x.shape[0] * x.shape[1] for x in xs)
    kept: list[torch.Tensor] | None = [] if tokens * cfg.ffn_dim * 4 <= GATED_BYTES else None
    solve(("mlp.c_proj",), hessian_of((gated(x) for x in xs), cfg.ffn_dim, kept))
    for j, x in enumerate(xs):
        xs[j] = x + mlp.c_proj(kept[j] if kept is not None else gated(x))
    clock.lap("forward")
    return linears, layers


def _output_errors(weight: torch.Tensor, quantized: torch.Tensor, h: torch.Tensor, options: dict
                   ) -> tuple[float, float]:
    """Output MSE of the GPTQ weights and of round-to-nearest on the calibration inputs (per output
    and token, from H = (2/n) sum x x^T), on ERROR_ROWS evenly spaced output rows."""
    rows = torch.linspace(0, weight.shape[0] - 1, min(ERROR_ROWS, weight.shape[0])).long()
    w = weight[rows]
    rtn = gptq_format.quantize_linear(w.numpy(), options["group_size"], sym=options["sym"])
    errors = []
    for wq in (quantized[rows], torch.from_numpy(gptq_format.dequantize(rtn))):
        delta = wq - w
        errors.append(float(((delta @ h) * delta).sum()) / (2 * len(rows)))
    return errors[0], errors[1]
