"""`qwenvl-edge bench --dims tiny`: a well-formed report (never a time asserted)."""

import json

import pytest
from PIL import Image

import qwenvl_edge
from qwenvl_edge.cli import main


@pytest.mark.slow
def test_bench_tiny_reports_every_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    results = tmp_path / "data" / "qwenvl-edge" / "bench"  # the user's data directory, not the current one
    main(["bench", "--dims", "tiny", "--repeats", "2", "--prompt", "32", "--gen", "4", "--threads", "1", "--quiet",
          "--cache", str(tmp_path / "cache"), "--chart", str(tmp_path / "chart.png")])
    out = capsys.readouterr().out
    assert "qwenvl-edge bench: tiny" in out and "decode" in out and "chart.png" in out
    (line,) = (results / "bench.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["threads"] == 1 and record["config"]["layers"] == 2 and record["peers"] == {}
    assert record["version"] == qwenvl_edge.__version__ and "git" in record  # which code made the figures
    roof = record["roof"]
    assert set(roof) == {"read_gb_s", "read_samples_gb_s", "fp32_gflop_s", "int8_gop_s"}
    assert len(roof["read_samples_gb_s"]) == 3 and roof["read_gb_s"] == max(roof["read_samples_gb_s"])
    ours = record["ours"]
    for key in ("load_s", "vision_open_s", "vision_s", "prefill_tok_s", "decode_tok_s", "ttft_image_s", "ttft_followup_s"):
        assert len(ours[key]) == 2 and all(v > 0 for v in ours[key]), key
    assert ours["question_tokens"] == 20 and ours["followup_vision_passes"] == 0
    assert len(ours["decode_step_ms"]) == 2 * 4 and "decode per token: p50" in out
    assert ours["peak_rss_gib"] > 0 and ours["threads"] == 1
    cold = record["cold"]  # two new processes answering as `qwenvl-edge ask` does
    for key in ("start_s", "load_s", "vision_s", "prefill_tok_s", "ttft_s", "peak_rss_gib"):
        assert len(cold[key]) == 2 and all(v > 0 for v in cold[key]), key
    assert all(c > v for c, v in zip(cold["ttft_s"], cold["vision_s"]))
    assert "cold: TTFT of a new process" in out and "the warm TTFT" in out
    with Image.open(tmp_path / "chart.png") as image:
        assert image.format == "PNG"


def test_bench_rejects_bad_options(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit, match="--repeats must be >= 1|must be >= 1"):
        main(["bench", "--dims", "tiny", "--repeats", "0", "--cache", str(tmp_path)])
    with pytest.raises(SystemExit, match="need --dims custom"):
        main(["bench", "--dims", "tiny", "--layers", "3", "--cache", str(tmp_path)])
    with pytest.raises(SystemExit, match="drop --dims"):
        main(["bench", "--bundle", str(tmp_path), "--dims", "tiny"])


@pytest.mark.slow
def test_bench_measures_a_given_bundle(tiny_bundle, tmp_path, capsys):
    results = tmp_path / "results"
    main(["bench", "--bundle", str(tiny_bundle), "--repeats", "1", "--prompt", "8", "--gen", "2", "--threads", "1",
          "--quiet", "--results", str(results), "--chart", str(tmp_path / "chart.png")])
    record = json.loads((results / "bench.jsonl").read_text())
    assert record["dims"] == "bundle" and record["bundle"]["path"] == str(tiny_bundle)
    assert record["config"]["layers"] == 2 and len(record["cold"]["ttft_s"]) == 1
    assert "qwenvl-edge bench: bundle" in capsys.readouterr().out
