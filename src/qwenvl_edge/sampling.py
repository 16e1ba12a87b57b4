"""Choosing the next token from logits: greedy, or sampling in Hugging Face's order (docs/model.md 7.3).

Order as in transformers 4.32 for Qwen's generate: repetition penalty over every id seen so far
(prompt and generated) -> temperature -> top-k -> top-p (sort ascending, drop the tokens whose
cumulative probability is <= 1 - top_p, always keep the most likely) -> softmax -> draw. Sampled
tokens cannot match another implementation's RNG; greedy is the conformance mode.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

# Logits divided by a smaller temperature overflow float32: below it, ask for greedy (0).
MIN_TEMPERATURE = 1e-4


@dataclasses.dataclass(frozen=True)
class Sampling:
    """temperature 0 (or do_sample False) is greedy; top_k 0 and top_p 1 switch those filters off."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    do_sample: bool = True

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not (self.temperature == 0 or self.temperature >= MIN_TEMPERATURE):
            raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE}, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be a whole number >= 0, got {self.top_k!r}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


def penalize_repetition(logits: np.ndarray, seen: Sequence[int], penalty: float) -> np.ndarray:
    """HF's RepetitionPenaltyLogitsProcessor: seen tokens' positive logits / penalty, negative * penalty."""
    if penalty == 1.0 or len(seen) == 0:
        return logits
    out = logits.copy()
    ids = np.unique(np.asarray(seen, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < len(out))]
    scores = out[ids]
    out[ids] = np.where(scores < 0, scores * penalty, scores / penalty)
    return out


def filter_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or k >= len(logits):
        return logits
    kth = np.partition(logits, -k)[-k]
    return np.where(logits < kth, -np.inf, logits)


def filter_top_p(logits: np.ndarray, p: float) -> np.ndarray:
    if p >= 1.0:
        return logits
    order = np.argsort(logits, kind="stable")  # ascending, like HF
    sorted_logits = logits[order].astype(np.float64)
    probs = np.exp(sorted_logits - sorted_logits[-1])
    cumulative = np.cumsum(probs / probs.sum())
    remove = cumulative <= 1 - p
    remove[-1] = False  # min_tokens_to_keep = 1
    out = logits.copy()
    out[order[remove]] = -np.inf
    return out


def choose(logits: np.ndarray, seen: Sequence[int], sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token id from one row of logits."""
    scores = penalize_repetition(np.asarray(logits, dtype=np.float32), seen, sampling.repetition_penalty)
    if sampling.greedy:
        return int(np.argmax(scores))
    scores = scores / np.float32(sampling.temperature)
    scores = filter_top_p(filter_top_k(scores, sampling.top_k), sampling.top_p)
    finite = scores[np.isfinite(scores)]
    probs = np.exp(scores.astype(np.float64) - finite.max())
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))
