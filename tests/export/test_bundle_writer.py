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


def test_a_path_that_appears_while_exporting_is_left_alone(tmp_path):
    with pytest.raises(FileExistsError, match="appeared while the export ran"):
        with BundleWriter(tmp_path / "b") as w:
            for name in "tvd":
                open(w.path(name), "w").close()
            os.mkdir(tmp_path / "b")  # the user's, made meanwhile
            (tmp_path / "b" / "notes.txt").write_text("keep me")
            w.finish(MANIFEST)
    assert (tmp_path / "b" / "notes.txt").read_text() == "keep me"
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".b.")]


def test_overwrite_replaces_only_a_bundle(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="is not a qwenvl-edge bundle"):
        write(tmp_path / "b", overwrite=True)
    assert (tmp_path / "b" / "thesis.tex").exists()
    (tmp_path / "c").write_text("a file")
    with pytest.raises(FileExistsError, match="is not a qwenvl-edge bundle"):
        write(tmp_path / "c", overwrite=True)


def test_an_overwrite_that_died_between_its_renames_is_undone(tmp_path):
    write(tmp_path / "b")
    os.rename(tmp_path / "b", tmp_path / ".b.old-999999999")  # the old bundle moved aside, then the process died
    (tmp_path / ".b.partial-999999999").mkdir()  # with its new bundle not yet in place
    from qwenvl_edge.export.bundle_writer import recover

    recover(str(tmp_path / "b"))
    assert sorted(os.listdir(tmp_path)) == ["b"]
    Bundle.open(tmp_path / "b").verify()
