"""Exact-match accuracy of Qwen-VL's eval_mm (GQA, OCR-VQA, AI2D; docs/model.md 7.5): the answer, stripped and
lower-cased, equals some stripped, lower-cased annotation. GQA answers are first cut down to a short
phrase by eval_mm's post-processing (``gqa_answer``)."""

from __future__ import annotations

from typing import Sequence


def score(prediction: str, annotations: Sequence[str]) -> float:
    if not annotations:
        raise ValueError("exact match needs at least one annotation")
    answer = prediction.strip().lower()
    return 1.0 if any(answer == a.strip().lower() for a in annotations) else 0.0


def gqa_answer(response: str) -> str:
    """eval_mm's GQA post-processing: keep the first sentence piece (cut at the first '.', ',' or '!'),
    lower-case, then in this order keep what follows the first "is ", "are ", "a ", "an ", "the " and
    what precedes the first " of". Quirk: these are substring tests, so "is " also matches inside
    "this " ("this is a dog" -> "") and "a " inside "pizza " ("pizza slice" -> "slice")."""
    text = response.strip().split(".")[0].split(",")[0].split("!")[0].lower()
    for word in ("is ", "are ", "a ", "an ", "the "):
        if word in text:
            text = text.split(word)[1]
    if " of" in text:
        text = text.split(" of")[0]
    return text.strip()


def gqa_score(prediction: str, annotations: Sequence[str]) -> float:
    return score(gqa_answer(prediction), annotations)
