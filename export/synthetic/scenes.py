"""Scenes of a few coloured shapes and at most one short word on varied backgrounds, drawn with Pillow.

A scene is drawn from a seeded ``random.Random``: the canvas (square or not), a background (plain,
gradient or stripes in pale colours), 1 to 3 shapes of distinct (colour, kind) pairs that do not
overlap, and, on most scenes, an upper-case word from a small list in dark letters. Everything a task
asks about (counts, colours, left/right, the word, pixel boxes) is read off the ``Scene``.
"""

from __future__ import annotations

import dataclasses
import random

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 60, 220), "yellow": (235, 200, 20)}
KINDS = ("circle", "square", "triangle")
WORDS = ("CAT", "DOG", "SUN", "BOX", "MAP", "CUP", "HAT", "KEY", "BUS", "PEN", "TOY", "EGG", "OWL", "FOX",
         "JAM", "ICE")
# Canvas sizes (width, height): square and not, all squashed to 448x448 by the preprocessing.
SIZES = ((448, 448), (512, 384), (384, 512), (640, 448), (448, 640), (560, 420))
MAX_SHAPES = 3
WORD_PROBABILITY = 0.75
INK = (25, 25, 25)


@dataclasses.dataclass(frozen=True)
class Shape:
    colour: str
    kind: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def centre_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2


@dataclasses.dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: tuple  # ("plain", rgb) | ("gradient", rgb, rgb, vertical) | ("stripes", rgb, rgb, period)
    shapes: tuple[Shape, ...]  # left to right
    word: str | None
    word_box: tuple[int, int, int, int] | None
    font_size: int


def _pale(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(180, 250) for _ in range(3))  # type: ignore[return-value]


def _overlaps(a, b, margin: int = 8) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _place(rng: random.Random, w: int, h: int, bw: int, bh: int, taken: list) -> tuple[int, int, int, int] | None:
    for _ in range(50):
        x, y = rng.randint(4, w - bw - 4), rng.randint(4, h - bh - 4)
        box = (x, y, x + bw, y + bh)
        if not any(_overlaps(box, t) for t in taken):
            return box
    return None


def random_scene(rng: random.Random) -> Scene:
    w, h = rng.choice(SIZES)
    kind = rng.choice(("plain", "gradient", "stripes"))
    if kind == "plain":
        background: tuple = ("plain", _pale(rng))
    elif kind == "gradient":
        background = ("gradient", _pale(rng), _pale(rng), rng.random() < 0.5)
    else:
        background = ("stripes", _pale(rng), _pale(rng), rng.randint(12, 40))
    taken: list = []
    word, word_box, font_size = None, None, rng.randint(44, 60)
    if rng.random() < WORD_PROBABILITY:
        word = rng.choice(WORDS)
        left, top, right, bottom = ImageFont.load_default(size=font_size).getbbox(word)
        word_box = _place(rng, w, h, right + 6, bottom + 6, taken)
        if word_box is None:
            word = None
        else:
            taken.append(word_box)
    pairs = rng.sample([(c, k) for c in COLOURS for k in KINDS], rng.randint(1, MAX_SHAPES))
    shapes = []
    for colour, shape_kind in pairs:
        side = int(min(w, h) * rng.uniform(0.2, 0.32))
        bw, bh = (side, side) if shape_kind != "triangle" else (side, int(side * rng.uniform(0.8, 1.0)))
        box = _place(rng, w, h, bw, bh, taken)
        if box is not None:
            taken.append(box)
            shapes.append(Shape(colour, shape_kind, box))
    if not shapes:  # a crowded canvas: try again with the next draw of the same generator
        return random_scene(rng)
    shapes.sort(key=lambda s: s.centre_x)
    return Scene(w, h, background, tuple(shapes), word, word_box, font_size)


def _background(scene: Scene) -> Image.Image:
    w, h = scene.width, scene.height
    kind = scene.background[0]
    if kind == "plain":
        return Image.new("RGB", (w, h), scene.background[1])
    a, b = scene.background[1], scene.background[2]
    if kind == "gradient":
        vertical = scene.background[3]
        n = h if vertical else w
        strip = Image.new("RGB", (1, n) if vertical else (n, 1))
        for i in range(n):
            t = i / max(n - 1, 1)
            strip.putpixel((0, i) if vertical else (i, 0), tuple(round(a[c] + t * (b[c] - a[c])) for c in range(3)))
        return strip.resize((w, h), Image.Resampling.NEAREST)
    period = scene.background[3]
    img = Image.new("RGB", (w, h), a)
    draw = ImageDraw.Draw(img)
    for x in range(0, w + h, 2 * period):  # diagonal stripes
        draw.polygon([(x, 0), (x + period, 0), (x + period - h, h), (x - h, h)], fill=b)
    return img


def draw(scene: Scene) -> Image.Image:
    img = _background(scene)
    d = ImageDraw.Draw(img)
    for s in scene.shapes:
        x1, y1, x2, y2 = s.box
        fill = COLOURS[s.colour]
        if s.kind == "circle":
            d.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif s.kind == "square":
            d.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            d.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)
    if scene.word is not None and scene.word_box is not None:
        font = ImageFont.load_default(size=scene.font_size)
        left, top, _, _ = font.getbbox(scene.word)
        d.text((scene.word_box[0] + 3 - left, scene.word_box[1] + 3 - top), scene.word, fill=INK, font=font)
    return img
