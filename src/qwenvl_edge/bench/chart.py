"""The bench record as a PNG: one panel per phase, a bar per engine (ours first), the machine's roof as
a dashed line where the phase has one. Drawn with Pillow's built-in font (no font files, no matplotlib)."""

from __future__ import annotations

from typing import Any

from .report import Row, digits, rows
from .timing import median

WIDTH, LABEL_W, BAR_H, GAP = 1100, 230, 24, 8
OURS, PEER, ROOF, INK, GRID = (0, 128, 128), (150, 150, 160), (200, 40, 40), (30, 30, 30), (225, 225, 225)


def _layer_rows(record: dict[str, Any]) -> list[Row]:
    layer = record["peers"].get("int4_layer", {})
    if "ours_int8_m1_ms" not in layer:
        return []
    return [Row(f"int4 layer 4096->11008, {m} token{'s' if m > 1 else ''}, int8 act.", "ms", False,
                layer[f"ours_int8_m{m}_ms"], {"onnxruntime MatMulNBits": layer[f"onnxruntime_int8_m{m}_ms"]})
            for m in (1, 256)]


def draw(record: dict[str, Any], path: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    panels = rows(record) + _layer_rows(record)
    title_font = ImageFont.load_default(size=18)
    font = ImageFont.load_default(size=14)
    height = 70 + sum(40 + (1 + len(r.peers)) * (BAR_H + GAP) + 14 for r in panels)
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    c = record["config"]
    pen.text((20, 14), f"qwenvl-edge bench: {record['dims']} (decoder {c['layers']}x{c['hidden']}, ViT "
                       f"{c['vision_layers']}x{c['vision_width']}), {record['threads']} threads", fill=INK, font=title_font)
    pen.text((20, 40), f"{record['time']}  ours in teal, peers in grey, red dashes: this machine's roof "
                       f"(read {record['roof']['read_gb_s']:.1f} GB/s, int8 GEMM {record['roof']['int8_gop_s']:.0f} "
                       f"GOP/s)", fill=INK, font=font)
    y = 70
    for row in panels:
        y = _panel(pen, row, y, font)
    image.save(path)


def _panel(pen, row: Row, y: int, font) -> int:
    better = "higher is better" if row.higher_is_better else "lower is better"
    pen.text((20, y + 8), f"{row.phase} ({row.unit}, {better})", fill=INK, font=font)
    y += 32
    bars = [("ours", median(row.ours), OURS)] + [(name, median(s), PEER) for name, s in row.peers.items()]
    top = max([v for _, v, _ in bars] + ([row.roof] if row.roof is not None else [])) * 1.12 or 1.0
    span = WIDTH - LABEL_W - 40
    for name, value, colour in bars:
        pen.text((20, y + 4), name, fill=INK, font=font)
        end = LABEL_W + max(1, round(span * value / top))
        pen.rectangle((LABEL_W, y, end, y + BAR_H), fill=colour)
        pen.text((end + 6, y + 4), f"{value:.{digits(value)}f}", fill=INK, font=font)
        y += BAR_H + GAP
    if row.roof is not None:
        x = LABEL_W + round(span * row.roof / top)
        first = y - len(bars) * (BAR_H + GAP)
        for dash in range(first - 4, y, 8):
            pen.line((x, dash, x, min(dash + 4, y)), fill=ROOF, width=2)
        pen.text((x + 4, first - 18), f"roof {row.roof:.{digits(row.roof)}f}", fill=ROOF, font=font)
    pen.line((20, y + 6, WIDTH - 20, y + 6), fill=GRID)
    return y + 14
