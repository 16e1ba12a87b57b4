"""ChartQA's relaxed accuracy as Qwen-VL's eval_mm computes it (pix2struct's ``relaxed_correctness``;
docs/model.md 7.5): numbers may be off by 5%, anything else must match case-insensitively.

Quirk: eval_mm calls ``relaxed_correctness(model answer, annotation)`` where the function's first
parameter is the *target*, so the relative change is divided by the model's answer, not by the
annotation: 100 for 95 passes (5/100), 95 for 100 fails (5/95). Also from the original: a '%' suffix
divides by 100, and a model answer of 0 falls back to comparing strings ("0" vs "0.0" fails).
"""

from __future__ import annotations

from typing import Sequence

MAX_RELATIVE_CHANGE = 0.05


def _number(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def correct(prediction: str, annotation: str, max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """One model answer (already stripped) against one annotation."""
    divisor = _number(prediction)  # the original's "target"
    value = _number(annotation)
    if value is not None and divisor:  # truthiness, as in the original: 0.0 (and None) compare strings
        return abs(value - divisor) / abs(divisor) <= max_relative_change
    return prediction.lower() == annotation.lower()


def score(prediction: str, annotations: Sequence[str]) -> float:
    """1.0 if the stripped answer is right for any annotation, else 0.0."""
    if not annotations:
        raise ValueError("relaxed accuracy needs at least one annotation")
    answer = prediction.strip()
    return 1.0 if any(correct(answer, a) for a in annotations) else 0.0
