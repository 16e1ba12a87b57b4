"""Multiple choice by option ranking, as Qwen-VL's ``evaluate_multiple_choice.py`` does it for
ScienceQA-Img (and MMBench; docs/model.md 7.4): no generation. Each option letter, as the continuation " A",
" B", ..., is scored by the mean cross-entropy of its tokens after the prompt; the lowest wins (the
first of equal ones, like argmin). Each continuation is tokenised on its own, as the reference
appends ``ids(' A')`` to the prompt ids; the prompt is prefilled once and every continuation runs on
top of its cache."""

from __future__ import annotations

import string
from typing import Sequence

import numpy as np

from qwenvl_edge.prompts import raw_ids

TEMPLATE = "<img>{image}</img>Context: {hint}\nQuestion: {question}\nOptions: {options}\nAnswer:"
LETTERS = string.ascii_uppercase


def prompt(image: str, question: str, options: Sequence[str], hint: str = "") -> str:
    """The prompt; an empty hint reads 'N/A', options are 'A. text' lines."""
    listed = "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))
    return TEMPLATE.format(image=image, hint=hint or "N/A", question=question, options=listed)


def continuations(n_options: int) -> list[str]:
    return [" " + letter for letter in LETTERS[:n_options]]


def continuation_losses(model, prompt: str, images: Sequence, continuations: Sequence[str]) -> list[float]:
    """Mean cross-entropy (nats per token) of each continuation after a base-model prompt whose
    ``<img>`` spans the images fill, as the reference's loss computes it."""
    prepared = model.prepare_raw(prompt, images)
    options = [raw_ids(model.tokenizer, c) for c in continuations]
    if not all(options):
        raise ValueError("every continuation needs at least one token")
    session = model.session
    with session.lock:
        last = session.prefill(prepared.ids, prepared.spans, prepared.timings)  # predicts each first token
        return [mean_cross_entropy(session.continuation_logits(last, option), option) for option in options]


def mean_cross_entropy(rows: np.ndarray, targets: Sequence[int]) -> float:
    """Mean over the rows of -log softmax(row)[target], in float64."""
    z = rows.astype(np.float64)
    top = z.max(axis=1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(targets)), list(targets)]))


def choose(losses: Sequence[float]) -> int:
    """Index of the lowest mean loss, the first on ties."""
    if not losses:
        raise ValueError("no options to choose from")
    return min(range(len(losses)), key=lambda i: losses[i])
