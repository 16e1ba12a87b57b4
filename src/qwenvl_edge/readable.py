"""Replies for people: the text without its ``<ref>``/``<box>``/``<quad>`` tags as it streams, and the boxes
listed with their pixels (what ``ask``, ``chat`` and ``ground`` print; ``--raw-text`` and ``--json`` keep
the tags).
"""

from __future__ import annotations

import re
from typing import Sequence

from qwenvl_edge import boxes

_OPEN = re.compile(r"<(ref|box|quad)>")
_OPENERS = ("<ref>", "<box>", "<quad>")


class TagFree:
    """Deltas of ``boxes.strip_tags(text)`` from deltas of ``text``: a ref, box or quad is shown (or
    dropped) once it is closed, and a trailing ``<`` that may begin a tag waits for the next delta."""

    def __init__(self) -> None:
        self._text, self._shown = "", 0

    def push(self, delta: str) -> str:
        self._text += delta
        end = self._settled()
        out, self._shown = boxes.strip_tags(self._text[self._shown : end]), end
        return out

    def finish(self) -> str:
        out, self._shown = boxes.strip_tags(self._text[self._shown :]), len(self._text)
        return out

    def _settled(self) -> int:
        """Where the text stops being final: at a tag still open, or at a tail that may begin one."""
        text, i = self._text, self._shown
        while match := _OPEN.search(text, i):
            close = text.find(f"</{match.group(1)}>", match.end())
            if close < 0:
                return match.start()
            i = close + len(match.group(1)) + 3
        starts = [k for k in range(1, min(len(text) - i, 5) + 1) if any(t.startswith(text[-k:]) for t in _OPENERS)]
        return len(text) - max(starts, default=0)


def box_lines(shapes: Sequence[boxes.Box | boxes.Quad], size: tuple[int, int] | None, ref: str = "") -> list[str]:
    """One line per box or quad: its ref (or ``ref``), its corners in 0..1000 and, given the image's
    (width, height), in pixels."""
    lines = []
    for shape in shapes:
        line = f"{shape.ref or ref or '(no ref)'}: {_points(_corners(shape), 'g')} of 1000"
        lines.append(line + (f" -> pixels {_points(_corners(shape, size), '.0f')}" if size else ""))
    return lines


def _corners(shape: boxes.Box | boxes.Quad, size: tuple[int, int] | None = None) -> list[tuple[float, float]]:
    """The shape's points, in 0..1000 or in the pixels of an image of ``size``."""
    if isinstance(shape, boxes.Box):
        x1, y1, x2, y2 = shape.pixels(*size) if size else (shape.x1, shape.y1, shape.x2, shape.y2)
        return [(x1, y1), (x2, y2)]
    return list(shape.pixels(*size) if size else shape.points)


def _points(points: Sequence[tuple[float, float]], spec: str) -> str:
    return ",".join(f"({x:{spec}},{y:{spec}})" for x, y in points)
