"""ANLS, average normalised Levenshtein similarity, as DocVQA's official script (``infographicsvqa_eval.py``
in Qwen-VL's eval_mm; docs/model.md 7.5) computes it for one question.

Per annotated answer: the edit distance between the lower-cased, whitespace-collapsed strings, divided
by the longer of the two strings AS GIVEN (quirk: un-normalised lengths, measured after ``.upper()``,
which can lengthen a string, e.g. "ß" -> "SS"); the question scores 1 - the smallest of those, set to
0 when below the threshold (a score of exactly 0.5 stays).
"""

from __future__ import annotations

from typing import Sequence

THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, 1):
        current = [j]
        for i, ca in enumerate(a, 1):
            current.append(previous[i - 1] if ca == cb else 1 + min(previous[i - 1], previous[i], current[-1]))
        previous = current
    return previous[-1]


def _collapse(text: str) -> str:
    return " ".join(text.strip().lower().split())


def score(prediction: str, answers: Sequence[str], threshold: float = THRESHOLD) -> float:
    """Similarity in [0, 1] of one answer to the closest annotated answer."""
    if not answers:
        raise ValueError("ANLS needs at least one annotated answer")
    distances = []
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        distances.append(0.0 if length == 0 else levenshtein(_collapse(answer), _collapse(prediction)) / length)
    similarity = 1 - min(distances)
    return 0.0 if similarity < threshold else similarity
