"""GPTQ (Frantar et al., arXiv 2210.17323) for one Linear, on the CPU, in torch float32.

auto-gptq's quantizer cannot run without CUDA (``fasterquant`` calls torch.cuda.synchronize and its
model loop moves layers to CUDA), so this is our own implementation, following the paper and
docs/model.md 8.9, step by step:
  1. H = (2/n) sum x x^T over the layer's calibration inputs (Hessian, a running mean);
  2. dead inputs (H_ii = 0): H_ii = 1 and W[:, i] = 0;
  3. act-order (optional): inputs sorted by decreasing diag H;
  4. dampening: H += damp_percent * mean(diag H) * I, raised tenfold (with a warning) while the
     Cholesky factorisation fails;
  5. U, the upper Cholesky factor of H^-1;
  6. columns quantized one by one in lazy blocks of 128: each column's error, divided by U_ii, is fed
     to the block's later columns through row i of U, and to the columns after the block in one GEMM;
  7. each group's (scale, zero) found when the loop reaches the group's first column, from the
     weights as updated so far (not static groups);
  8. everything permuted back to the input order, g_idx = position in the permutation // group_size.
The grid is gptq_format's, the one round-to-nearest uses (scales rounded to float16 before any
rounding of weights), so the packed result dequantizes exactly to the weights the algorithm settled on
and used for its error feedback.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from . import gptq_format

DAMP_RETRIES = 3  # times the damping is raised tenfold before giving up


class Hessian:
    """H = (2/n) sum x x^T [K, K] float32 over the input rows x [..., K] of one layer, kept as a
    running mean; n counts rows, i.e. tokens (AutoGPTQ counts sequences; the damping is relative to
    mean(diag H), so the normalisation only keeps the numbers in range)."""

    def __init__(self, in_features: int):
        self.h = torch.zeros(in_features, in_features, dtype=torch.float32)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.h.shape[0]).to(torch.float32)
        rows = x.shape[0]
        self.h.mul_(self.n / (self.n + rows))
        self.n += rows
        self.h.addmm_(x.T, x, alpha=2.0 / self.n)


@dataclasses.dataclass
class GptqResult:
    """One quantized Linear in the input order: weight[o, i] = scales[g, o] * (q[i, o] - zeros[g, o])
    with g = g_idx[i], exactly (float32)."""

    q: np.ndarray  # [in, out] uint8, 0..15
    scales: np.ndarray  # [groups, out] float16
    zeros: np.ndarray  # [groups, out] uint8
    g_idx: np.ndarray  # [in] int32
    weight: torch.Tensor  # [out, in] float32 (a transposed view): the weights the error feedback used
    loss: float  # sum over columns of (w - q)^2 / U_ii^2 / 2, the paper's objective
    damp_percent: float  # the damping that made H factorisable (damp_percent or more)

    def linear(self, v1: bool = True) -> gptq_format.QuantizedLinear:
        """The auto-gptq tensors (v1: zeros stored minus one, word-wise)."""
        return gptq_format.QuantizedLinear(gptq_format.pack_rows(self.q), gptq_format.pack_zeros(self.zeros, v1),
                                           self.scales, self.g_idx)


def inverse_factor(h: torch.Tensor, damp_percent: float = 0.01, name: str = "layer") -> tuple[torch.Tensor, float]:
    """(U, damp) with U upper triangular [K, K] and U^T U = (H + damp * mean(diag H) * I)^-1.

    U = chol(cholesky_inverse(chol(H + damp I)), upper), all three steps in place in one K x K buffer
    (K = 11008 for mlp.c_proj: 485 MB). The damping starts at damp_percent and is raised tenfold
    (with a warning) while H + damp I is not positive definite; a ValueError naming the layer
    follows the last try.
    """
    if not torch.isfinite(h).all():
        raise ValueError(f"{name}: the Hessian holds NaN or infinity (non-finite calibration activations?)")
    mean_diag = h.diagonal().mean().item()
    info = torch.empty((), dtype=torch.int32)
    damp = damp_percent
    for attempt in range(DAMP_RETRIES + 1):
        m = h.clone()
        m.diagonal().add_(damp * mean_diag)
        torch.linalg.cholesky_ex(m, out=(m, info))
        if info.item() == 0:
            torch.cholesky_inverse(m, out=m)
            torch.linalg.cholesky_ex(m, upper=True, out=(m, info))
        if info.item() == 0:
            if attempt:
                warnings.warn(f"{name}: the Hessian is not positive definite with damp_percent {damp_percent:g}; "
                              f"quantized with damp_percent {damp:g}", stacklevel=2)
            return m, damp
        del m
        damp *= 10
    raise ValueError(f"{name}: the Hessian is not positive definite even with damp_percent {damp / 10:g} "
                     f"(degenerate calibration inputs?)")


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, *, group_size: int = 128, sym: bool = True,
                  act_order: bool = False, damp_percent: float = 0.01, block_size: int = 128,
                  name: str = "layer") -> GptqResult:
    """Quantize weight [out, in] to 4 bits given the Hessian [in, in] of its inputs (both left unchanged).

    Groups never straddle a lazy block: in % group_size and block_size % group_size must be 0.
    ``name`` labels warnings and errors.
    """
    n_out, k = weight.shape
    if tuple(hessian.shape) != (k, k):
        raise ValueError(f"{name}: Hessian of shape {tuple(hessian.shape)} for a weight with {k} inputs")
    if group_size <= 0 or k % group_size or block_size % group_size:
        raise ValueError(f"{name}: {k} inputs and lazy blocks of {block_size} do not split into groups of "
                         f"{group_size}")
    # The working copy is W^T [in, out]: a column of W is a contiguous row for the per-column steps, and
    # the columns after a lazy block are one contiguous slab for its GEMM update.
    wt = torch.empty(k, n_out, dtype=torch.float32)
    wt.copy_(weight.detach().T)
    h = hessian.detach().to(torch.float32)
    dead = h.diagonal() == 0
    if dead.any():
        h = h.clone()  # the caller's Hessian stays as it is
        h.diagonal()[dead] = 1
        wt[dead] = 0
    perm = None
    if act_order:
        perm = torch.argsort(h.diagonal(), descending=True, stable=True)
        wt, h = wt[perm], h[perm][:, perm]
    u, damp = inverse_factor(h, damp_percent, name)
    del h

    q = torch.empty(k, n_out, dtype=torch.uint8)  # [in, out] in the quantization order
    scales = np.empty((k // group_size, n_out), np.float16)
    zeros = np.empty((k // group_size, n_out), np.uint8)
    loss = 0.0
    for start in range(0, k, block_size):
        end = min(start + block_size, k)
        block = wt[start:end]  # a view: each row becomes its quantized value in turn
        errors = torch.empty_like(block)  # (w - q) / U_ii
        u_block = u[start:end, start:end]
        for i in range(end - start):
            if (start + i) % group_size == 0:  # the group's grid, from the weights as updated so far
                scale16, zero = gptq_format.group_grid(block[i : i + group_size].T.numpy(), sym)
                g = (start + i) // group_size
                scales[g], zeros[g] = scale16, zero
                s, z = torch.from_numpy(scale16.astype(np.float32)), torch.from_numpy(zero)
            level = torch.round(block[i] / s).add_(z).clamp_(0, gptq_format.MAXQ)
            q[start + i] = level
            fake = level.sub_(z).mul_(s)  # (q - z) * s: what gptq_format.dequantize computes
            torch.sub(block[i], fake, out=errors[i]).div_(u_block[i, i])
            block[i] = fake
            block[i + 1 :].addr_(u_block[i, i + 1 :], errors[i], alpha=-1)
        loss += float(errors.double().square().sum()) / 2
        wt[end:].addmm_(u[start:end, end:].T, errors, alpha=-1)  # the lazy update of the later columns
    del u

    g_idx = torch.arange(k, dtype=torch.int32) // group_size
    if perm is not None:
        inverse = torch.argsort(perm)
        wt, q, g_idx = wt[inverse], q[inverse], g_idx[inverse]
    return GptqResult(q.numpy(), scales, zeros, g_idx.numpy(), wt.T, loss, damp)
