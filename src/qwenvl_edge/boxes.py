"""Grounding boxes in Qwen-VL's text (docs/model.md 6.4, 6.5): parse, format, map to pixels, draw.

The model writes ``<ref>the dog</ref><box>(x1,y1),(x2,y2)</box>``: top-left then bottom-right, each
coordinate normalised to 0..1000 of the image's width or height (whatever its aspect ratio: the
image was squashed to a square). Pixel mapping: ``x * W / 1000`` (and ``y * H / 1000``), the
convention of the reference's drawing helper and of the paper's 0..1000 range, kept as floats; the
paper's evaluation script divides by 999 instead (``divisor=999`` reproduces it). Formatting a pixel
box into a prompt is the inverse: ``floor(x * 1000 / W)`` clamped to 0..999.

One deliberate difference from the reference's ``_fetch_all_box_with_ref``: a ``<ref>`` names every
box that follows it directly (``<ref>cats</ref><box>A</box><box>B</box>`` -> both boxes are cats),
where the reference names only the first. Malformed output never raises: what does not parse stays
text and yields no box.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

_SEGMENT = re.compile(r"<(ref|box|quad)>(.*?)</\1>", re.S)
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_POINT = re.compile(rf"\({_NUMBER},{_NUMBER}\)")
_TAGS = re.compile(r"<ref>(.*?)</ref>|<box>.*?(?:</box>|$)|<quad>.*?(?:</quad>|$)", re.S)
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40))


@dataclasses.dataclass(frozen=True)
class Box:
    """A box as the model wrote it (0..1000 coordinates) and the expression it belongs to."""

    x1: float
    y1: float
    x2: float
    y2: float
    ref: str | None = None

    def pixels(self, width: int, height: int, divisor: float = 1000) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) in the original image's pixels."""
        sx, sy = width / divisor, height / divisor
        return self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy


@dataclasses.dataclass(frozen=True)
class Quad:
    """A quadrilateral (OCR): four (x, y) points in 0..1000."""

    points: tuple[tuple[float, float], ...]
    ref: str | None = None

    def pixels(self, width: int, height: int, divisor: float = 1000) -> tuple[tuple[float, float], ...]:
        return tuple((x * width / divisor, y * height / divisor) for x, y in self.points)


def _points(text: str) -> list[tuple[float, float]] | None:
    """The (x, y) points of a box/quad body, or None when it is not exactly points and commas."""
    found = _POINT.findall(text)
    if _POINT.sub("", text).replace(",", "").strip():
        return None
    return [(float(x), float(y)) for x, y in found]


def parse(text: str) -> list[Box | Quad]:
    """Every well-formed box and quad of ``text``, in order, with the ref that directly precedes it."""
    shapes: list[Box | Quad] = []
    ref, ref_end = None, -1
    for match in _SEGMENT.finditer(text):
        kind, body = match.group(1), match.group(2)
        if kind == "ref":
            ref, ref_end = body.strip(), match.end()
            continue
        attached = ref if text[ref_end : match.start()].strip() == "" else None
        points = _points(body)
        if kind == "box" and points is not None and len(points) == 2:
            (x1, y1), (x2, y2) = points
            shapes.append(Box(x1, y1, x2, y2, attached))
        elif kind == "quad" and points is not None and len(points) == 4:
            shapes.append(Quad(tuple(points), attached))
        ref = attached
        ref_end = match.end() if attached is not None else -1
    return shapes


def strip_tags(text: str) -> str:
    """Display text: refs become their text, boxes and quads (closed or not) disappear."""
    return _TAGS.sub(lambda m: m.group(1) or "", text)


def normalize(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """A pixel box (x1, y1, x2, y2) of a width x height image -> 0..999 integers for a prompt."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")

    def scale(v: float, size: int) -> int:
        return min(max(math.floor(v * 1000 / size), 0), 999)

    x1, y1, x2, y2 = box
    return scale(x1, width), scale(y1, height), scale(x2, width), scale(y2, height)


def draw(image: Image.Image, shapes: Sequence[Box | Quad], divisor: float = 1000) -> Image.Image:
    """A copy of ``image`` (RGB) with every box/quad drawn in a colour per ref, labelled with its ref.
    Uses Pillow's built-in font: no font file, no network."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    width, height = out.size
    line = max(2, round(min(width, height) / 200))
    font = ImageFont.load_default(size=max(12, round(min(width, height) / 30)))
    colours: dict[str | None, tuple[int, int, int]] = {}
    for shape in shapes:
        colour = colours.setdefault(shape.ref, PALETTE[len(colours) % len(PALETTE)])
        if isinstance(shape, Box):
            x1, y1, x2, y2 = shape.pixels(width, height, divisor)
            pen.rectangle((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), outline=colour, width=line)
            anchor = (min(x1, x2), min(y1, y2))
        else:
            points = list(shape.pixels(width, height, divisor))
            pen.line(points + points[:1], fill=colour, width=line)
            anchor = points[0]
        if shape.ref:
            left, top, right, bottom = pen.textbbox(anchor, shape.ref, font=font)
            pen.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=colour)
            pen.text(anchor, shape.ref, fill=(255, 255, 255), font=font)
    return out
