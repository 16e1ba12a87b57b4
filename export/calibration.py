"""Calibration data for GPTQ: the decoder's input embeddings on text and image prompts.

A VL decoder sees image-feature rows as well as text, and its activations differ on them, so the set
mixes both. The built-in set is small and offline: passages in several languages and registers
(prose, dialogue, code, arithmetic, lists, grounding answers) and pictures drawn on the spot (scenes,
a chart, text, gradients) asked about in the model's own prompt format. A user file replaces it:
JSON lines ``{"text": "..."}`` (or a plain text file, samples separated by blank lines) where
``<img>PATH</img>`` spans name images relative to the file.

Image rows come from the bundle's own vision encoder (any ``encode(pixels) -> features``), so the
decoder is calibrated on the features it will be given at run time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from qwenvl_edge.image import preprocess, to_rgb
from qwenvl_edge.tokenizer import Tokenizer
from qwenvl_edge.vocab import IMAGE_SLOTS

SYSTEM = "You are a helpful assistant."
IMAGE_SPAN = re.compile(r"<img>(.*?)</img>", re.S)


@dataclasses.dataclass
class Sample:
    """One calibration sequence: text with ``<img>ref</img>`` spans, and the images they refer to."""

    text: str
    images: dict[str, Image.Image] = dataclasses.field(default_factory=dict)


PASSAGES = (
    "The old lighthouse stood at the end of a narrow spit of rock. Every evening the keeper climbed the "
    "hundred and twelve steps, trimmed the wick and polished the lens until the beam reached the ships "
    "far out in the bay. In winter the storms came from the north and the spray froze on the windows.",
    "北京是中国的首都，也是一座有三千多年历史的古城。故宫、天坛和长城每年吸引数百万游客。"
    "春天的时候，公园里开满了桃花，人们喜欢在周末带着孩子去散步、放风筝。",
    "def fibonacci(n: int) -> list[int]:\n    sequence = [0, 1]\n    while len(sequence) < n:\n"
    "        sequence.append(sequence[-1] + sequence[-2])\n    return sequence[:n]\n\n"
    "print(fibonacci(10))  # [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]",
    "Question: A train leaves at 14:35 and arrives at 17:10. How long is the journey?\n"
    "Answer: From 14:35 to 17:35 is 3 hours; 17:10 is 25 minutes earlier, so the journey takes "
    "2 hours and 35 minutes. 12 * 7 = 84, 3.5 + 4.25 = 7.75, 1000 / 8 = 125.",
    "La recette est simple : faites fondre le beurre, ajoutez la farine et remuez pendant deux minutes. "
    "Versez le lait petit à petit sans cesser de fouetter, puis salez et ajoutez une pincée de muscade.",
    "Die Sitzung begann pünktlich um neun Uhr. Zuerst stellte die Leiterin den Haushaltsplan für das "
    "kommende Jahr vor; danach diskutierten die Mitglieder über die Renovierung der Bibliothek.",
    "東京の朝はとても早い。駅には通勤する人々があふれ、コンビニではおにぎりとコーヒーがよく売れる。"
    "週末になると、多くの家族が公園や美術館に出かける。",
    "Shopping list:\n- 2 kg potatoes\n- 1 loaf of rye bread\n- 6 eggs\n- olive oil (500 ml)\n"
    "- apples, pears, a lemon\nTotal budget: about 25 euros.",
    "User: My laptop is slow when I open many browser tabs. What can I do?\nAssistant: Close the tabs you "
    "do not need, check which extensions use memory, and consider adding RAM if the machine allows it.",
    "In the picture, <ref>the man in a red jacket</ref><box>(112,340),(298,912)</box> is holding "
    "<ref>a black umbrella</ref><box>(240,180),(520,410)</box> while <ref>a dog</ref>"
    "<box>(610,700),(780,955)</box> waits beside him.",
    "El sistema solar tiene ocho planetas. Mercurio es el más cercano al Sol y Neptuno el más lejano. "
    "Júpiter es tan grande que podría contener más de mil Tierras.",
    "| year | revenue | growth |\n|------|---------|--------|\n| 2021 | 4.2 M   | 12 %   |\n"
    "| 2022 | 5.1 M   | 21 %   |\n| 2023 | 5.9 M   | 16 %   |",
)

IMAGE_QUESTIONS = (
    ("Describe the image in English.", "A small house with a red roof stands on green grass under a blue "
     "sky; a yellow sun shines in the top right corner."),
    ("What does the chart show?", "A bar chart with five bars; the third bar is the tallest and the first "
     "is the shortest."),
    ("What is written in the image?", "The image shows the words OPEN 24 HOURS in white letters on a dark "
     "blue sign."),
    ("Where is the circle?", "<ref>The circle</ref><box>(540,210),(860,530)</box>"),
    ("这张图片里有什么？", "图片里是从红色渐变到蓝色的背景，中间有几条白色的横线。"),
    ("How many squares are there?", "There are nine squares arranged in a three by three grid."),
)


def _draw(kind: int, rng: np.random.Generator) -> Image.Image:
    """Pictures with the statistics of real ones (flat regions, edges, text), not noise."""
    w, h = [(640, 480), (800, 600), (512, 512), (900, 500), (448, 448), (600, 800)][kind % 6]
    image = Image.new("RGB", (w, h), (120, 170, 235))
    d = ImageDraw.Draw(image)
    if kind % 6 == 0:  # a house scene
        d.rectangle((0, h * 2 // 3, w, h), fill=(70, 150, 60))
        d.rectangle((w // 3, h // 2, w // 2, h * 3 // 4), fill=(230, 220, 200))
        d.polygon([(w // 3 - 20, h // 2), (w * 5 // 12, h // 3), (w // 2 + 20, h // 2)], fill=(190, 40, 40))
        d.ellipse((w - 140, 30, w - 60, 110), fill=(250, 220, 60))
    elif kind % 6 == 1:  # a bar chart
        image.paste((255, 255, 255), (0, 0, w, h))
        for i, height in enumerate(rng.uniform(0.2, 0.9, 5)):
            x = 80 + i * 130
            d.rectangle((x, int(h * (1 - height)), x + 90, h - 40), fill=tuple(int(c) for c in rng.integers(0, 200, 3)))
        d.line((60, h - 40, w - 40, h - 40), fill=(0, 0, 0), width=3)
    elif kind % 6 == 2:  # a sign with text
        image.paste((20, 40, 120), (0, 0, w, h))
        for row, line in enumerate(("OPEN", "24 HOURS", "EST. 1987")):
            d.text((60, 120 + 90 * row), line, fill=(255, 255, 255))
    elif kind % 6 == 3:  # shapes
        image.paste((240, 240, 235), (0, 0, w, h))
        d.ellipse((w * 54 // 100, h * 21 // 100, w * 86 // 100, h * 53 // 100), fill=(30, 120, 200))
        d.rectangle((60, 280, 300, 460), fill=(220, 120, 30))
    elif kind % 6 == 4:  # a gradient with stripes
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        pixels = (255 * ((1 - ramp) * np.array([220, 40, 40]) + ramp * np.array([40, 60, 220]))).astype(np.uint8)
        image = Image.fromarray(np.repeat(pixels, h, axis=0))
        d = ImageDraw.Draw(image)
        for y in range(80, h, 90):
            d.line((0, y, w, y), fill=(255, 255, 255), width=6)
    else:  # a grid of squares
        image.paste((250, 250, 250), (0, 0, w, h))
        for i in range(9):
            x, y = 60 + (i % 3) * 170, 160 + (i // 3) * 170
            d.rectangle((x, y, x + 140, y + 140), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def builtin_samples(chat_format: str) -> list[Sample]:
    """The built-in set in the model's prompt format ("chatml" for Chat models, "raw" for the base)."""
    rng = np.random.default_rng(0)
    samples = []
    for passage in PASSAGES:
        samples.append(Sample(_chatml(passage, "") if chat_format == "chatml" else passage))
    for i, (question, answer) in enumerate(IMAGE_QUESTIONS):
        ref = f"calibration-{i}.png"
        if chat_format == "chatml":
            text = _chatml(f"Picture 1: <img>{ref}</img>\n{question}", answer)
        else:
            text = f"<img>{ref}</img>{question} Answer: {answer}"
        samples.append(Sample(text, {ref: _draw(i, rng)}))
    return samples


def _chatml(query: str, answer: str) -> str:
    """One ChatML exchange as text (calibration needs the format's tokens, not make_context's ids)."""
    turn = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n"
    return turn + (f"{answer}<|im_end|>" if answer else "")


def read_samples(path: str | os.PathLike) -> list[Sample]:
    """A user's calibration file: JSON lines with a "text" field, or plain text with samples separated by
    blank lines. ``<img>PATH</img>`` spans load PATH relative to the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the calibration file ({e})") from e
    if path.endswith((".jsonl", ".json")):
        texts = []
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}, line {number}: expected a JSON object with a \"text\" field") from e
    else:
        texts = [t.strip() for t in re.split(r"\n\s*\n", content) if t.strip()]
    if not texts:
        raise ValueError(f"{path}: no calibration samples")
    base = os.path.dirname(os.path.abspath(path))
    samples = []
    for text in texts:
        images = {}
        for ref in IMAGE_SPAN.findall(text):
            try:
                images[ref] = to_rgb(os.path.join(base, ref))
            except ValueError as e:
                raise ValueError(f"{path}: cannot open calibration image {ref!r} ({e})") from e
        samples.append(Sample(text, images))
    return samples


def embeddings(samples: list[Sample], tokenizer: Tokenizer, wte: torch.Tensor,
               encode_images: Callable[[np.ndarray], np.ndarray], image_size: int,
               max_tokens: int = 1024) -> list[torch.Tensor]:
    """float32 [1, T, hidden] input embeddings per sample, image features spliced into the image slots.
    Sequences are cut at ``max_tokens``, never inside an image span."""
    sp = tokenizer.special
    out = []
    for sample in samples:
        ids = tokenizer.encode(sample.text)
        if len(ids) > max_tokens:
            ids = ids[:max_tokens]
            if sp.img_start in ids[-IMAGE_SLOTS - 1:] and ids[-1] != sp.img_end:  # do not cut a span
                ids = ids[: len(ids) - 1 - ids[::-1].index(sp.img_start)]
        x = wte[torch.tensor(ids)].float().unsqueeze(0)
        spans = tokenizer.image_spans(ids)
        if spans:
            missing = [ref for ref, _ in spans if ref not in sample.images]
            if missing:
                raise ValueError(f"calibration text refers to image(s) {missing} that were not given")
            pixels = np.stack([preprocess(sample.images[ref], image_size) for ref, _ in spans])
            features = torch.from_numpy(np.asarray(encode_images(pixels), dtype=np.float32))
            for n, (_, start) in enumerate(spans):
                x[0, start + 1 : start + 1 + IMAGE_SLOTS] = features[n]
        out.append(x)
    return out
