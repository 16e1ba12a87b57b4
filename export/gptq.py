"""GPTQ (Frantar et al., arXiv 2210.17323) for one Linear, on the CPU, in torch float32.

auto-gptq's quantizer cannot run without CUDA (``fasterquant`` calls torch.cuda.synchronize and its
model loop moves layers to CUDA), so this is our own implementation of the algorithm, following the
paper and kernels.md section 2 step by step: Hessian H = (2/n) sum x x^T of the layer's inputs; dead
inputs zeroed; optional act-order (inputs sorted by decreasing diag H); dampening by damp_percent of
mean(diag H) (raised tenfold, with a warning, if the Cholesky factorisation fails); the upper Cholesky
factor U of H^-1; columns quantized one by one in lazy blocks of 128, each error fed forward to the
not-yet-quantized columns through U; each group's (scale, zero) found when the loop reaches the
group's first column, from the already-updated weights. The grid is gptq_format's (the one
round-to-nearest uses), so the packed result dequantizes exactly to the weights the algorithm chose.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from . import gptq_format

DAMP_RETRIES = 3


class Hessian:
    """Running H = (2/n) sum x x^T over the input rows x [..., K] of one layer (n counts rows, i.e.
    tokens; damping is relative, so the normalisation only keeps the numbers in range)."""

    def __init__(self, in_features: int):
        self.h = torch.zeros(in_features, in_features, dtype=torch.float32)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.h.shape[0]).to(torch.float32)
        rows = x.shape[0]
        self.h *= self.n / (self.n + rows)
        self.n += rows
        x = x * (2.0 / self.n) ** 0.5
        self.h.addmm_(x.T, x)


@dataclasses.dataclass
class GptqResult:
    """A quantized Linear in the original input order: W[o, i] ~= scales[g, o] * (q[i, o] - zeros[g, o])
    with g = g_idx[i]."""

    q: np.ndarray  # [in, out] uint8
    scales: np.ndarray  # [groups, out] float16
    zeros: np.ndarray  # [groups, out] uint8
    g_idx: np.ndarray  # [in] int32
    loss: float  # sum over columns of (w - q)^2 / U_ii^2 / 2, the paper's objective

    def linear(self, v1: bool = True) -> gptq_format.QuantizedLinear:
        """In the auto-gptq layout (v1: zeros stored minus one, word-wise)."""
        return gptq_format.QuantizedLinear(gptq_format.pack_rows(self.q), gptq_format.pack_zeros(self.zeros, v1),
                                           self.scales, self.g_idx)

    def dequantized(self) -> np.ndarray:
        """The float weight [out, in] the algorithm settled on."""
        g = self.g_idx.astype(np.int64)
        s, z = self.scales.astype(np.float32), self.zeros.astype(np.float32)
        return np.ascontiguousarray(((self.q.astype(np.float32) - z[g]) * s[g]).T)


def _inverse_factor(h: torch.Tensor, damp_percent: float, name: str) -> torch.Tensor:
    """U with U^T U = (H + damp I)^-1, U upper triangular; the damping is raised tenfold when H is not
    positive definite enough for the factorisation."""
    mean_diag = torch.mean(torch.diag(h)).item()
    damp = damp_percent
    for attempt in range(DAMP_RETRIES + 1):
        damped = h + damp * mean_diag * torch.eye(len(h), dtype=h.dtype)
        lower, info = torch.linalg.cholesky_ex(damped.double())
        if info.item() == 0:
            inverse = torch.cholesky_inverse(lower)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if info.item() == 0:
                if attempt:
                    warnings.warn(f"{name}: Hessian factorised only with damp_percent {damp:g}", stacklevel=3)
                return upper.float()
        damp *= 10
    raise ValueError(f"{name}: the Hessian is not positive definite even with damp_percent {damp / 10:g} "
                     f"(degenerate calibration inputs?)")


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, *, group_size: int = 128, sym: bool = True,
                  act_order: bool = False, damp_percent: float = 0.01, block_size: int = 128,
                  name: str = "layer") -> GptqResult:
    """Quantize weight [out, in] to 4 bits given the Hessian [in, in] of its inputs."""
    w = weight.detach().to(torch.float32).clone()
    n_out, k = w.shape
    if hessian.shape != (k, k):
        raise ValueError(f"{name}: Hessian of shape {tuple(hessian.shape)} for a weight with {k} inputs")
    if k % group_size or block_size % group_size:
        raise ValueError(f"{name}: {k} inputs (block {block_size}) do not split into groups of {group_size}")
    h = hessian.detach().to(torch.float32).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = torch.argsort(torch.diag(h), descending=True, stable=True) if act_order else torch.arange(k)
    w, h = w[:, perm], h[perm][:, perm]
    u = _inverse_factor(h, damp_percent, name)

    groups = k // group_size
    q_int = torch.zeros(k, n_out, dtype=torch.uint8)  # in permuted order
    scales = np.zeros((groups, n_out), np.float16)
    zeros = np.zeros((groups, n_out), np.uint8)
    loss = 0.0
    for start in range(0, k, block_size):
        end = min(start + block_size, k)
        w1 = w[:, start:end].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[start:end, start:end]
        for i in range(end - start):
            col = start + i
            g = col // group_size
            if col % group_size == 0:  # the group's grid, from the weights as updated so far
                scale, zero = gptq_format.group_grid(w1[:, i : i + group_size].numpy(), sym)
                scales[g], zeros[g] = scale, zero
                s_t, z_t = torch.from_numpy(scale.astype(np.float32)), torch.from_numpy(zero)
            col_w = w1[:, i]
            q = torch.clamp(torch.round(col_w / s_t) + z_t, 0, gptq_format.MAXQ)
            fake = s_t * (q - z_t)
            q_int[col] = q.to(torch.uint8)
            d = u1[i, i]
            loss += float(((col_w - fake) ** 2).sum() / d**2 / 2)
            e = (col_w - fake) / d
            w1[:, i:] -= e[:, None] * u1[i, i:][None, :]
            err1[:, i] = e
        w[:, end:] -= err1 @ u[start:end, end:]
    inverse = torch.argsort(perm)
    g_idx = (inverse // group_size).to(torch.int32).numpy()
    return GptqResult(q_int[inverse].numpy(), scales, zeros, g_idx, loss)
