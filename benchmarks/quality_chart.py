"""The quality benchmark's rows as a PNG (bench_quality.py): one panel per task, a bar per configuration
with its 95% interval as a whisker, the chance row as a dashed line. Pillow's built-in font, like
qwenvl_edge.bench.chart (no matplotlib)."""

from __future__ import annotations

from typing import Sequence

WIDTH, LABEL_W, BAR_H, GAP, PANEL_GAP = 1000, 300, 16, 5, 36
BAR, REFERENCE, CHANCE, INK, GRID = (0, 128, 128), (90, 90, 160), (200, 40, 40), (30, 30, 30), (225, 225, 225)


def draw(rows: Sequence[dict], tasks: Sequence[str], path: str) -> None:
    """``rows``: the chance row first, then the configurations (``name``, ``tasks[task]``: score, low, high)."""
    from PIL import Image, ImageDraw, ImageFont

    chance, configs = rows[0], rows[1:]
    title_font, font = ImageFont.load_default(size=18), ImageFont.load_default(size=13)
    panel_h = 28 + len(configs) * (BAR_H + GAP)
    height = 50 + len(tasks) * (panel_h + PANEL_GAP)
    img = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(img)
    d.text((12, 12), "Answer quality per export configuration (95% bootstrap interval; dashed: chance)", fill=INK,
           font=title_font)
    y = 50
    for task in tasks:
        scores = [r["tasks"][task] for r in configs]
        top = max(max(s["high"] for s in scores), chance["tasks"][task]["high"], 100.0)
        x0, x1 = LABEL_W, WIDTH - 70

        def x(v: float) -> float:
            return x0 + (x1 - x0) * v / top

        d.text((12, y), task, fill=INK, font=title_font)
        y += 28
        for k in range(5):
            gx = x(top * k / 4)
            d.line((gx, y - 4, gx, y + len(configs) * (BAR_H + GAP)), fill=GRID)
            d.text((gx - 10, y + len(configs) * (BAR_H + GAP)), f"{top * k / 4:.0f}", fill=INK, font=font)
        for n, (row, s) in enumerate(zip(configs, scores)):
            top_y = y + n * (BAR_H + GAP)
            d.text((12, top_y + 1), row["name"], fill=INK, font=font)
            d.rectangle((x0, top_y, x(s["score"]), top_y + BAR_H), fill=REFERENCE if n == 0 else BAR)
            mid = top_y + BAR_H / 2
            d.line((x(s["low"]), mid, x(s["high"]), mid), fill=INK, width=2)
            d.text((x(s["high"]) + 6, top_y + 1), f"{s['score']:.1f}", fill=INK, font=font)
        cx = x(chance["tasks"][task]["score"])
        for dy in range(y - 4, y + len(configs) * (BAR_H + GAP), 8):
            d.line((cx, dy, cx, dy + 4), fill=CHANCE, width=2)
        y += panel_h + PANEL_GAP - 28
    img.save(path)
