"""Rows, ratios, roof fractions, the table and the chart of a hand-made bench record."""

import pytest
from PIL import Image

from qwenvl_edge.bench import chart, report


def record():
    return {
        "time": "2026-11-25T10:00:00", "dims": "qwen-vl-7b", "threads": 2, "prompt": 256, "gen": 64, "repeats": 3,
        "config": {"layers": 32, "hidden": 4096, "vision_layers": 48, "vision_width": 1664},
        "roof": {"read_gb_s": 30.0, "fp32_gflop_s": 150.0, "int8_gop_s": 1000.0, "read_samples_gb_s": [27.5, 30.0]},
        "work": {"vision_flops": 4e12, "prefill_flops_per_token": 13e9, "decode_bytes_per_token": 4.5e9},
        "ours": {"load_s": [1.0, 1.2, 1.1], "vision_open_s": [3.0, 3.1, 3.2], "vision_s": [8.0, 8.2, 7.9], "prefill_tok_s": [39.0, 40.0, 41.0],
                 "decode_tok_s": [5.0, 5.5, 6.0], "decode_step_ms": [float(ms) for ms in range(150, 250)],
                 "ttft_image_s": [15.0, 15.5, 16.0], "ttft_followup_s": [1.0, 1.1, 1.2],
                 "question_tokens": 20, "peak_rss_gib": 4.5, "isa": "avx512vnni"},
        "peers": {"llama.cpp": {"load_s": [2.2], "prefill_tok_s": [20.0, 20.0, 20.0], "decode_tok_s": [5.0, 5.0, 5.0],
                                "peak_rss_gib": 8.0},
                  "torch_vision": {"torch_fp32_s": [24.0, 24.0, 24.0], "torch_bf16_s": [12.0, 12.0, 12.0],
                                   "peak_rss_gib": 9.0},
                  "MNN": {"mnn_fp16_s": [16.0, 16.0, 16.0], "peak_rss_gib": 5.0},
                  "MNN LLM": {"skipped": "MNN prefill and decode not measured: remote code"},
                  "int4_layer": {"ours_int8_m1_ms": [1.0], "onnxruntime_int8_m1_ms": [1.5],
                                 "ours_int8_m256_ms": [50.0], "onnxruntime_int8_m256_ms": [40.0],
                                 "ours_fp32_m1_ms": [1.2], "onnxruntime_fp32_m1_ms": [1.3],
                                 "ours_fp32_m256_ms": [90.0], "onnxruntime_fp32_m256_ms": [80.0]}},
    }


def test_ratios_point_the_right_way_and_roofs_follow_the_work():
    rows = {r.phase.split(",")[0]: r for r in report.rows(record())}
    assert rows["load (decoder mmap"].ratio("llama.cpp") == pytest.approx(2.0)  # lower is better
    assert rows["prefill"].ratio("llama.cpp") == pytest.approx(2.0)  # higher is better
    assert rows["decode"].ratio("llama.cpp") == pytest.approx(1.1)
    assert rows["vision"].ratio("torch fp32") == pytest.approx(3.0)
    assert rows["vision"].ratio("MNN fp16") == pytest.approx(2.0)
    assert rows["decode"].roof == pytest.approx(30e9 / 4.5e9)
    assert rows["decode"].of_roof == pytest.approx(5.5 / (30 / 4.5))
    assert rows["vision"].of_roof == pytest.approx(4.0 / 8.0)  # 4 s at the int8 roof, 8 s measured
    assert rows["TTFT"].roof is None and rows["peak RSS"].peers == {"llama.cpp": [8.0], "torch": [9.0]}


def test_table_lists_every_phase_and_the_layer_comparison():
    text = report.table(record())
    for phrase in ("load (decoder mmap, tokenizer)", "vision session open", "vision, per image", "prefill, 256 tokens", "decode", "TTFT, 1 image + 20-token",
                   "TTFT, 2nd question", "peak RSS", "llama.cpp 5.00 ±0.00 (1.10x)", "int8 activations",
                   "read 30.0 GB/s (the best of 2 readings: 27.5, 30.0)", "82.5%",
                   "decode per token: p50 200 ms, p95 244 ms (100 tokens)", "MNN fp16 16.0 ±0.0 (2.00x)",
                   "MNN prefill and decode not measured: remote code"):
        assert phrase in text, phrase
    assert "warning" not in text
    skipped = record()
    skipped["peers"] = {"llama.cpp": {"skipped": "llama.cpp skipped: gguf is not installed"}}
    assert "gguf is not installed" in report.table(skipped)


def test_chart_has_a_panel_per_phase(tmp_path):
    chart.draw(record(), str(tmp_path / "c.png"))
    with Image.open(tmp_path / "c.png") as image:
        assert image.width == chart.WIDTH and image.height > 9 * 60
        colours = {c for _, c in image.getcolors(1 << 16)}
    assert {chart.OURS, chart.PEER, chart.ROOF} <= colours


def test_figures_that_spread_more_than_their_median_are_warned_about():
    busy = record()
    busy["ours"]["decode_tok_s"] = [1.0, 5.0, 12.0]  # ±5.5 around 5
    busy["peers"]["llama.cpp"]["prefill_tok_s"] = [2.0, 20.0, 60.0]
    warnings = [line for line in report.table(busy).splitlines() if line.startswith("warning:")]
    prefill, decode = warnings
    assert prefill.startswith("warning: prefill, 256 tokens, llama.cpp:") and "±29.0 around 20.0 tok/s" in prefill
    assert decode.startswith("warning: decode, ours:") and "±5.50 around 5.00 tok/s" in decode
