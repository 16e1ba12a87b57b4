"""Opening and verifying bundles: every damaged bundle is a FormatError naming what is wrong."""

import dataclasses
import json

import pytest

from qwenvl_edge.bundle import MANIFEST, Bundle, file_sha256
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import FileEntry

from manifests import small_manifest


def make_bundle(path, contents=None, **changes):
    """A bundle directory of small files; ``changes`` replace top-level fields of its manifest's JSON."""
    path.mkdir()
    files = contents or {"vision.onnx": b"onnx", "decoder.qvw": b"weights" * 10, "qwen.tiktoken": b"IQ== 0\n"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    listed = {n: FileEntry(bytes=len(d), sha256=file_sha256(path / n)) for n, d in files.items()}
    manifest = dataclasses.replace(small_manifest(), files=listed).sealed().to_json()
    manifest.update(changes)
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


def test_a_good_bundle_opens_and_verifies(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path / "b"))
    bundle.verify()
    assert bundle.path("decoder") == str(tmp_path / "b" / "decoder.qvw")
    assert bundle.total_bytes == 4 + 70 + 7
    seen = []
    bundle.verify(seen.append)
    assert sum(seen) == bundle.total_bytes


def test_a_modified_file_fails_verification_by_name(tmp_path):
    path = make_bundle(tmp_path / "b")
    (path / "decoder.qvw").write_bytes(b"WEIGHTS" * 10)  # same size, different bytes
    bundle = Bundle.open(path)
    with pytest.raises(FormatError, match="decoder.qvw: sha256 differs"):
        bundle.verify()


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "decoder.qvw").unlink(), "decoder.qvw: missing from the bundle"),
    (lambda p: (p / "decoder.qvw").write_bytes(b"short"), "decoder.qvw: 5 bytes, the manifest says 70"),
    (lambda p: (p / MANIFEST).unlink(), "no manifest.json; not a complete bundle"),
    (lambda p: (p / MANIFEST).write_text("{"), "cannot read the manifest"),
])
def test_damaged_bundles_are_named(tmp_path, damage, message):
    path = make_bundle(tmp_path / "b")
    damage(path)
    with pytest.raises(FormatError, match=message):
        Bundle.open(path)


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 99}, "format version 99"),
    ({"format": "other"}, "not a qwenvl-edge bundle manifest"),
    ({"vision": {**small_manifest().to_json()["vision"], "file": "nope.onnx"}},
     "vision.file = 'nope.onnx' is not among the listed files"),
    ({"files": {name: {"bytes": 1, "sha256": "0" * 64} for name in ("../escape", "vision.onnx", "decoder.qvw",
                                                                    "qwen.tiktoken")}}, "not a plain name"),
])
def test_bad_manifests_are_refused(tmp_path, changes, message):
    with pytest.raises(FormatError, match=message):
        Bundle.open(make_bundle(tmp_path / "b", **changes))


def test_not_a_directory(tmp_path):
    with pytest.raises(FormatError, match="not a bundle directory"):
        Bundle.open(tmp_path / "absent")


def test_read_ahead_advises_every_weight_file_vision_first(tmp_path, monkeypatch):
    import os

    bundle = Bundle.open(make_bundle(tmp_path / "b"))
    advised = []
    real_open = os.open
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: advised.append((offset, length, advice)),
                        raising=False)
    opened = []
    monkeypatch.setattr(os, "open", lambda path, flags: opened.append(os.path.basename(path)) or real_open(path, flags))
    thread = bundle.read_ahead()
    thread.join()
    assert opened == ["vision.onnx", "decoder.qvw"]
    assert advised == [(0, 0, os.POSIX_FADV_WILLNEED)] * 2


def test_verify_covers_the_manifest_itself(tmp_path):
    from qwenvl_edge.manifest import Manifest

    path = make_bundle(tmp_path / "b")
    raw = json.loads((path / MANIFEST).read_text())
    sealed = Manifest.from_json(raw, "m").sealed().to_json()
    (path / MANIFEST).write_text(json.dumps(sealed))
    Bundle.open(path).verify()
    sealed["decoder"]["config"]["max_context"] = 4096  # valid, but not what was exported
    (path / MANIFEST).write_text(json.dumps(sealed))
    with pytest.raises(FormatError, match="manifest.json: its content does not match its digest"):
        Bundle.open(path).verify()
    del sealed["digest"]
    (path / MANIFEST).write_text(json.dumps(sealed))
    with pytest.raises(FormatError, match="no digest of its own"):
        Bundle.open(path).verify()


def test_verify_names_every_bad_file(tmp_path):
    path = make_bundle(tmp_path / "b")
    (path / "decoder.qvw").write_bytes(b"WEIGHTS" * 10)  # other bytes
    (path / "vision.onnx").write_bytes(b"x")  # another size
    (path / "qwen.tiktoken").unlink()
    with pytest.raises(FormatError, match="vision.onnx: 1 bytes") as error:
        Bundle.open(path)  # opening stops at the first
    assert "decoder.qvw" not in str(error.value)
    with pytest.raises(FormatError) as error:
        Bundle.open(path, check_files=False).verify()
    lines = str(error.value).splitlines()
    assert lines[0] == "3 problems:" and len(lines) == 4
    for problem in ("decoder.qvw: sha256 differs", "vision.onnx: 1 bytes", "qwen.tiktoken: missing"):
        assert any(problem in line for line in lines[1:]), problem
