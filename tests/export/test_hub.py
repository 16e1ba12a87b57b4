"""Export by Hugging Face Hub id: what is fetched, and the export from the Hub's cache, offline."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil

import pytest

from qwenvl_edge.bundle import Bundle
from qwenvl_edge.export import hub
from command_line import qwenvl_edge

REPO = "tester/tiny-qwen-vl-chat-int4"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REMOTE_CODE = ("modeling_qwen.py", "visual.py", "tokenization_qwen.py")  # what the real repositories also hold


def remote_repository(checkpoint, into) -> str:
    """A repository's files as on the Hub: the checkpoint and the remote code the exporter must not fetch."""
    shutil.copytree(checkpoint, into)
    for name in REMOTE_CODE:
        (into / name).write_text("raise SystemExit('remote code ran')\n")
    return str(into)


def hub_cache(repository: str, cache) -> None:
    """``repository`` laid out as huggingface_hub's cache holds a download of REPO at COMMIT."""
    repo = cache / ("models--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(repository, repo / "snapshots" / COMMIT)


def test_only_the_files_the_exporter_reads_are_fetched(tiny_int4, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    remote = remote_repository(tiny_int4, tmp_path / "remote")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    fetched: list[str] = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        """The Hub, as seen through snapshot_download: files matching the patterns arrive in the snapshot."""
        assert repo_id == REPO and revision == "v1"
        for name in sorted(os.listdir(remote)):
            if any(fnmatch.fnmatch(name, p) for p in allow_patterns) and name not in fetched:
                fetched.append(name)
                shutil.copy(os.path.join(remote, name), snapshot / name)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    path, name = hub.fetch(REPO, "v1", progress=False)
    assert path == str(snapshot) and name == f"{REPO}@snapshot"
    assert not [n for n in fetched if n.endswith(".py")]
    assert sorted(fetched) == sorted(n for n in os.listdir(tiny_int4) if not n.endswith(".py"))


@pytest.mark.slow
def test_export_by_repo_id_from_the_offline_cache_equals_the_directory_export(tiny_int4, tiny_bundle, tmp_path):
    pytest.importorskip("huggingface_hub")
    hub_cache(remote_repository(tiny_int4, tmp_path / "remote"), tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "QWENVL_EDGE_BUNDLES": str(tmp_path / "bundles")}
    run = qwenvl_edge("export", REPO, "--vision", "fp32", "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    name = "tiny-qwen-vl-chat-int4"
    by_id = Bundle.open(tmp_path / "bundles" / name).manifest
    by_directory = Bundle.open(tiny_bundle).manifest
    assert by_id.files == by_directory.files  # every file's sha256
    assert by_id.model.source == f"{REPO}@{COMMIT}"

    listed = qwenvl_edge("list", env=env)
    assert listed.returncode == 0 and name in listed.stdout and "vision fp32" in listed.stdout
    answered = qwenvl_edge("ask", name, "Hi", "--max-tokens", "2", env=env)
    assert answered.returncode == 0, answered.stderr


def test_an_uncached_repository_offline_is_a_clear_error(tmp_path):
    pytest.importorskip("huggingface_hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "QWENVL_EDGE_BUNDLES": str(tmp_path / "bundles")}
    run = qwenvl_edge("export", "tester/never-downloaded", "--quiet", env=env)
    assert run.returncode == 1
    assert "not in the Hugging Face cache" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "bundles").exists()


def test_an_index_naming_a_path_outside_the_snapshot_is_refused(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../../etc/x.bin"}}))
    with pytest.raises(ValueError, match="not a weight file beside it"):
        hub.weight_files(str(tmp_path))


def test_a_directory_needs_an_output_and_takes_no_revision(tiny_int4):
    assert "-o/--output" in qwenvl_edge("export", str(tiny_int4), "--quiet").stderr
    assert "--revision applies" in qwenvl_edge("export", str(tiny_int4), "-o", "x", "--revision", "v1").stderr


def test_a_bundle_name_that_is_not_stored_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("QWENVL_EDGE_BUNDLES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"nor a bundle of that name in {tmp_path}"):
        Bundle.open("qwen-vl-chat")

