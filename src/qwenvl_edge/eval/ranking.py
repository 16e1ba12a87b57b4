"""Multiple choice by option ranking, as Qwen-VL's ``evaluate_multiple_choice.py`` does it for
ScienceQA-Img (and MMBench; spec 7.4): no generation. Each option letter, as the continuation " A",
" B", ..., is scored by the mean cross-entropy of its tokens after the prompt; the lowest wins (the
first of equal ones, like argmin)."""

from __future__ import annotations

import string
from typing import Sequence

TEMPLATE = "<img>{image}</img>Context: {hint}\nQuestion: {question}\nOptions: {options}\nAnswer:"
LETTERS = string.ascii_uppercase


def prompt(image: str, question: str, options: Sequence[str], hint: str = "") -> str:
    """The prompt; an empty hint reads 'N/A', options are 'A. text' lines."""
    listed = "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))
    return TEMPLATE.format(image=image, hint=hint or "N/A", question=question, options=listed)


def continuations(n_options: int) -> list[str]:
    return [" " + letter for letter in LETTERS[:n_options]]


def choose(losses: Sequence[float]) -> int:
    """Index of the lowest mean loss, the first on ties."""
    if not losses:
        raise ValueError("no options to choose from")
    return min(range(len(losses)), key=lambda i: losses[i])
