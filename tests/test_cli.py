import json

import pytest

from qwenvl_edge.cli import main


def test_info_prints_versions_and_cpu(capsys):
    main(["info"])
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] >= 1 and "features" in info["cpu"]


@pytest.mark.slow
def test_demo_runs_the_tiny_model_end_to_end(capsys, tmp_path):
    main(["demo", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "export bundle" in out and "Q: Where is the red box?" in out
    assert "reused" in out.split("turn 2:")[1] and "(0 reused)" not in out.split("turn 2:")[1]
    assert (tmp_path / "tiny.bundle" / "manifest.json").is_file() and (tmp_path / "demo-boxes.png").is_file()


def test_tiny_writes_a_checkpoint(capsys, tmp_path):
    main(["tiny", str(tmp_path / "t"), "--int4"])
    assert "GPTQ Int4" in capsys.readouterr().out
    assert (tmp_path / "t" / "quantize_config.json").is_file()


def test_verify_names_every_bad_file(tiny_bundle, tmp_path):
    import shutil

    from command_line import qwenvl_edge

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    good = qwenvl_edge("verify", str(bundle))
    assert good.returncode == 0 and "all sha256 match" in good.stdout
    with open(bundle / "decoder.qvw", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xfe")
    (bundle / "qwen.tiktoken").write_bytes(b"short")
    bad = qwenvl_edge("verify", str(bundle))
    assert bad.returncode == 1 and "2 problems" in bad.stderr and "Traceback" not in bad.stderr
    assert "decoder.qvw: sha256 differs" in bad.stderr and "qwen.tiktoken: 5 bytes" in bad.stderr
