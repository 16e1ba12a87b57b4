"""A bench record turned into rows (phase, ours, peers, roof) and printed as a table."""

from __future__ import annotations

import dataclasses
from typing import Any

from .timing import median, percentile, spread


@dataclasses.dataclass
class Row:
    phase: str
    unit: str
    higher_is_better: bool
    ours: list[float]
    peers: dict[str, list[float]]
    roof: float | None = None  # the best the machine allows for this phase, in the row's unit

    @property
    def value(self) -> float:
        return median(self.ours)

    def ratio(self, peer: str) -> float:
        """How many times better ours is than ``peer`` (>1: ours is better)."""
        theirs = median(self.peers[peer])
        return self.value / theirs if self.higher_is_better else theirs / self.value

    @property
    def of_roof(self) -> float | None:
        if self.roof is None:
            return None
        return self.value / self.roof if self.higher_is_better else self.roof / self.value


def rows(record: dict[str, Any]) -> list[Row]:
    ours, peers, roof, work = record["ours"], record["peers"], record["roof"], record["work"]
    llama = peers.get("llama.cpp", {})
    torch = peers.get("torch_vision", {})
    mnn = peers.get("MNN", {})

    def peer(source: dict, key: str, name: str) -> dict[str, list[float]]:
        return {name: source[key]} if key in source else {}

    cold = record.get("cold", {})
    cold_rows = [
        Row("cold: start (interpreter, imports)", "s", False, cold["start_s"], {}),
        Row("cold: first image (open + vision)", "s", False, cold["vision_s"], {}),
        Row("cold: first prefill", "tok/s", True, cold["prefill_tok_s"], {}),
        Row("cold: TTFT of a new process", "s", False, cold["ttft_s"], {}),
        Row("cold: peak RSS", "GiB", False, cold["peak_rss_gib"], {}),
    ] if cold else []
    return [
        Row("load (decoder mmap, tokenizer)", "s", False, ours["load_s"], peer(llama, "load_s", "llama.cpp")),
        Row("vision session open (weights prepacked)", "s", False, ours["vision_open_s"], {}),
        Row("vision, per image", "s", False, ours["vision_s"],
            {**peer(torch, "torch_fp32_s", "torch fp32"), **peer(torch, "torch_bf16_s", "torch bf16"),
             **peer(mnn, "mnn_fp16_s", "MNN fp16")},
            roof=work["vision_flops"] / (roof["int8_gop_s"] * 1e9)),
        Row(f"prefill, {record['prompt']} tokens", "tok/s", True, ours["prefill_tok_s"],
            peer(llama, "prefill_tok_s", "llama.cpp"),
            roof=roof["int8_gop_s"] * 1e9 / work["prefill_flops_per_token"]),
        Row("decode", "tok/s", True, ours["decode_tok_s"], peer(llama, "decode_tok_s", "llama.cpp"),
            roof=roof["read_gb_s"] * 1e9 / work["decode_bytes_per_token"]),
        Row(f"TTFT, 1 image + {ours['question_tokens']}-token question", "s", False, ours["ttft_image_s"], {}),
        Row("TTFT, 2nd question, same image", "s", False, ours["ttft_followup_s"], {}),
        Row("peak RSS", "GiB", False, [ours["peak_rss_gib"]],
            {**({"llama.cpp": [llama["peak_rss_gib"]]} if "peak_rss_gib" in llama else {}),
             **({"torch": [torch["peak_rss_gib"]]} if "peak_rss_gib" in torch else {})}),
    ] + cold_rows


def cold_over_warm(record: dict[str, Any]) -> float | None:
    """The first answer of a new process over the warm TTFT (1 image + the question), or None."""
    if not record.get("cold"):
        return None
    return median(record["cold"]["ttft_s"]) / median(record["ours"]["ttft_image_s"])


def digits(value: float) -> int:
    """Decimals that keep about three significant digits (0 from 100 up, 4 below 0.01)."""
    return 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3 if value >= 0.01 else 4


def _cell(samples: list[float]) -> str:
    value = median(samples)
    d = digits(value)
    return f"{value:.{d}f}" + (f" ±{spread(samples):.{d}f}" if len(samples) > 1 else "")


def table(record: dict[str, Any]) -> str:
    c = record["config"]
    roof = record["roof"]
    readings = roof.get("read_samples_gb_s", [roof["read_gb_s"]])
    lines = [f"qwenvl-edge bench: {record['dims']} (decoder {c['layers']} x {c['hidden']}, ViT {c['vision_layers']} x "
             f"{c['vision_width']}), {record['threads']} threads, isa {record['ours'].get('isa', '?')}; "
             f"median ±half-range of {record['repeats']} after a warm-up",
             f"roof: read {roof['read_gb_s']:.1f} GB/s (the best of {len(readings)} readings: "
             f"{', '.join(f'{r:.1f}' for r in readings)}), fp32 GEMM {roof['fp32_gflop_s']:.0f} GFLOP/s, "
             f"int8 GEMM {roof['int8_gop_s']:.0f} GOP/s (onnxruntime)", ""]
    header = f"{'phase':<38} {'unit':>6} {'ours':>16} {'% roof':>7}  peers (ours vs peer)"
    lines += [header, "-" * len(header)]
    for row in rows(record):
        frac = f"{100 * row.of_roof:6.1f}%" if row.of_roof is not None else " " * 7
        others = ", ".join(f"{name} {_cell(s)} ({row.ratio(name):.2f}x)" for name, s in row.peers.items())
        lines.append(f"{row.phase:<38} {row.unit:>6} {_cell(row.ours):>16} {frac}  {others}")
    steps = record["ours"].get("decode_step_ms")
    if steps:
        p50, p95 = percentile(steps, 50), percentile(steps, 95)
        lines.append(f"decode per token: p50 {p50:.{digits(p50)}f} ms, p95 {p95:.{digits(p95)}f} ms "
                     f"({len(steps)} tokens)")
    ratio = cold_over_warm(record)
    if ratio is not None:
        lines.append(f"cold start: a new process's TTFT is {ratio:.2f}x the warm TTFT")
    layer = record["peers"].get("int4_layer")
    if layer and "error" not in layer:
        lines += ["", "one int4 layer 4096 -> 11008 (ms per call; ours vs onnxruntime MatMulNBits block 128):"]
        for key in sorted(k for k in layer if k.startswith("ours_")):
            theirs = layer["onnxruntime" + key[len("ours"):]]
            activations, tokens = key[len("ours_"):-len("_ms")].split("_m")
            label = f"{tokens} token{'s' if tokens != '1' else ''}, {activations} activations"
            lines.append(f"  {label:<28} ours {_cell(layer[key]):>14}  onnxruntime "
                         f"{_cell(theirs):>14}  ({median(theirs) / median(layer[key]):.2f}x)")
    for name, peer in record["peers"].items():
        if "error" in peer or "skipped" in peer:
            lines.append(f"{name}: {peer.get('skipped') or 'failed: ' + peer['error'].strip().splitlines()[-1]}")
    warnings = noisy(record)
    return "\n".join(lines + ([""] + warnings if warnings else []))


def noisy(record: dict[str, Any]) -> list[str]:
    """A warning for each figure whose samples spread more than their median: the machine was busy."""
    lines = []
    for row in rows(record):
        for name, samples in [("ours", row.ours), *row.peers.items()]:
            if len(samples) > 1 and spread(samples) > median(samples):
                d = digits(median(samples))
                lines.append(f"warning: {row.phase}, {name}: the samples spread more than their median "
                             f"(±{spread(samples):.{d}f} around {median(samples):.{d}f} {row.unit}): the machine was "
                             f"busy; run again, or with more --repeats")
    return lines
