"""The bundle appears whole or not at all."""

import os

import pytest

from qwenvl_edge.bundle import Bundle
from qwenvl_edge.export.bundle_writer import BundleWriter

from manifests import small_manifest

MANIFEST = small_manifest(vision="v", decoder="d", tokenizer="t")


def write(out, **kwargs):
    with BundleWriter(out, **kwargs) as w:
        for name in "tvd":
            with open(w.path(name), "w") as f:
                f.write(name * 3)
        return w.finish(MANIFEST)


def test_finish_moves_a_complete_bundle_in_place(tmp_path):
    manifest = write(tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == ["b"]
    assert manifest.files["t"].bytes == 3 and manifest.vision == MANIFEST.vision
    Bundle.open(tmp_path / "b").verify()


def test_a_failed_export_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with BundleWriter(tmp_path / "b") as w:
            open(w.path("t"), "w").close()
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_an_existing_bundle_is_kept_unless_overwrite(tmp_path):
    write(tmp_path / "b")
    with pytest.raises(FileExistsError, match="--overwrite"):
        BundleWriter(tmp_path / "b")
    write(tmp_path / "b", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_killed_exports_staging_is_not_a_bundle_and_is_cleaned(tmp_path):
    stale = tmp_path / ".b.partial-999999999"  # no such process
    stale.mkdir()
    (stale / "d").write_text("half")
    with pytest.raises(Exception, match="not a complete bundle"):
        Bundle.open(stale)
    write(tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == ["b"]
