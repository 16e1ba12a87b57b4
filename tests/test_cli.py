import json

from qwenvl_edge.cli import main


def test_info_prints_versions_and_cpu(capsys):
    main(["info"])
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] >= 1 and "features" in info["cpu"]


def test_demo_runs_the_tiny_model_end_to_end(capsys, tmp_path):
    main(["demo", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "tokens:" in out and "vision encoder" in out
    assert (tmp_path / "tiny-qwen-vl" / "config.json").is_file()


def test_tiny_writes_a_checkpoint(capsys, tmp_path):
    main(["tiny", str(tmp_path / "t"), "--int4"])
    assert "GPTQ Int4" in capsys.readouterr().out
    assert (tmp_path / "t" / "quantize_config.json").is_file()
