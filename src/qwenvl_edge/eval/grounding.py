"""RefCOCO/+/g accuracy (Acc@0.5, "Precision@1") as Qwen-VL's ``evaluate_grounding.py`` computes it
(docs/model.md 7.4, 7.5).

The continuation after ``<ref>expression</ref><box>`` is decoded without special tokens and NOT
stripped; the first ``(a),(b)`` of it is the box. Anything unexpected (no match, a group without a
comma, not exactly two numbers per group, a number that does not parse) gives the box (0,0,0,0). The
numbers are divided by 999 (not 1000) and scaled by the image's width (x) and height (y); the
prediction is right when its IoU with the ground-truth pixel box (x1, y1, x2, y2) is at least 0.5.
"""

from __future__ import annotations

import re
from typing import Sequence

PATTERN = re.compile(r"\((.*?)\),\((.*?)\)")
SCALE = 999  # eval_mm's de-normalisation (the demo's drawing uses 1000)
ZERO_BOX = (0.0, 0.0, 0.0, 0.0)
IOU_THRESHOLD = 0.5


def parse(text: str) -> tuple[float, float, float, float]:
    """The first box of a continuation, in the model's 0..999 units; ZERO_BOX when there is none."""
    found = PATTERN.findall(text)
    if not found or "," not in found[0][0] or "," not in found[0][1]:
        return ZERO_BOX
    try:
        (x1, y1), (x2, y2) = ([float(v) for v in group.split(",")] for group in found[0])
    except ValueError:  # a value that is not a number, or not exactly two values in a group
        return ZERO_BOX
    return (x1, y1, x2, y2)


def to_pixels(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 / SCALE * width, y1 / SCALE * height, x2 / SCALE * width, y2 / SCALE * height)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """torchvision's box_iou for one pair: areas are not clamped (a reversed box has a negative area),
    the intersection is; an empty union gives nan (never correct)."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = area_a + area_b - inter
    return inter / union if union != 0 else float("nan")


def evaluate(text: str, truth: Sequence[float], width: float, height: float) -> tuple[list[float], float, float]:
    """(predicted pixel box, IoU, 1.0 if IoU >= 0.5 else 0.0) of one continuation."""
    box = to_pixels(parse(text), width, height)
    overlap = iou(box, truth)
    return list(box), overlap, 1.0 if overlap >= IOU_THRESHOLD else 0.0
