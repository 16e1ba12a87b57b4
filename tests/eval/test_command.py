"""``qwenvl-edge eval`` on the tiny bundle."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from qwenvl_edge.cli import main


@pytest.fixture
def data(tmp_path, pictures):
    shutil.copy(pictures[0], tmp_path / "p0.png")
    lines = [{"id": i, "image": "p0.png", "question": "What is it?", "answers": ["blocks"]} for i in range(3)]
    path = tmp_path / "gqa.jsonl"
    path.write_text("".join(json.dumps(l) + "\n" for l in lines) + "{oops\n", encoding="utf-8")
    return path


def test_eval_prints_the_summary_and_writes_results(tiny_bundle, data, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    args = ["eval", str(tiny_bundle), "--task", "gqa", "--data", str(data), "--out", str(out), "--exact"]
    main(args + ["--limit", "2"])
    printed = capsys.readouterr()
    header, row = printed.out.splitlines()  # no error line: the bad line is past the limit
    assert header.split() == ["task", "metric", "items", "score", "errors", "seconds"]
    assert row.split()[:3] == ["gqa", "accuracy", "2"] and row.split()[4] == "0"
    assert "gqa" in printed.err  # the progress bar
    main(args)  # resumes: the third item and the bad line
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[2] == "3" and lines[1].split()[4] == "1" and lines[2] == "line 4: not valid JSON " \
        "(Expecting property name enclosed in double quotes at column 2)"
    assert [r.get("id") for r in map(json.loads, out.read_text().splitlines())] == [0, 1, None, 2]


def test_eval_refuses_bad_options_with_a_message(tiny_bundle, data):
    with pytest.raises(SystemExit, match="no few-shot prompt"):
        main(["eval", str(tiny_bundle), "--task", "refcoco", "--data", str(data), "--few-shot", "1"])
    with pytest.raises(SystemExit, match="--limit must be >= 1"):
        main(["eval", str(tiny_bundle), "--task", "gqa", "--data", str(data), "--limit", "0"])
    with pytest.raises(SystemExit, match="--workers and --threads-per-worker go with --ray"):
        main(["eval", str(tiny_bundle), "--task", "gqa", "--data", str(data), "--workers", "2"])
    with pytest.raises(SystemExit, match="with --ray, give each worker's threads with --threads-per-worker"):
        main(["eval", str(tiny_bundle), "--task", "gqa", "--data", str(data), "--ray", "--threads", "2"])


WITHOUT_RAY = """
import sys
from qwenvl_edge.cli import main
main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
assert not loaded, loaded
"""


def test_eval_without_ray_never_imports_it(tiny_bundle, data):
    args = ["eval", str(tiny_bundle), "--task", "gqa", "--data", str(data), "--limit", "1", "--quiet"]
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("task")


def test_eval_names_the_missing_extra(tiny_bundle, data, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pycocoevalcap" else real(name, *a))
    with pytest.raises(SystemExit, match=r"needs pycocoevalcap: pip install 'qwenvl-edge\[eval\]'"):
        main(["eval", str(tiny_bundle), "--task", "caption", "--data", str(data)])


def test_eval_quiet_shows_no_progress_and_a_chat_bundle_gets_a_warning(tiny_bundle, tiny_base_bundle, data):
    from command_line import qwenvl_edge

    args = ["--task", "gqa", "--data", str(data), "--limit", "1", "--quiet"]
    chat = qwenvl_edge("eval", str(tiny_bundle), *args)
    assert chat.returncode == 0 and chat.stdout.startswith("task")
    assert chat.stderr.startswith("qwenvl-edge eval: warning:") and "chat model" in chat.stderr
    assert "item/s" not in chat.stderr and "1/1" not in chat.stderr  # no progress bar
    base = qwenvl_edge("eval", str(tiny_base_bundle), *args)
    assert base.returncode == 0 and base.stderr == ""
