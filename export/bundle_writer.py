"""Write a bundle directory atomically (docs/bundle.md 1).

Files are staged in a hidden sibling directory ``.NAME.partial-PID``; the manifest, with every file's
size and sha256, is written last, and only then is the directory renamed to NAME. An export that fails
removes its staging directory; one that is killed leaves a hidden directory without a manifest, which
no reader takes for a bundle and the next export to the same NAME removes.

Nothing the export did not create is deleted: a path that appears while an export runs is left alone
(the export fails), and ``overwrite`` replaces only a bundle (or an empty directory). Replacing moves the
old bundle to ``.NAME.old-PID`` first; if the process dies between the two renames, the next export to
NAME (or a call to ``recover``) moves it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Callable

from qwenvl_edge.bundle import MANIFEST, file_sha256
from qwenvl_edge.manifest import FileEntry, Manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(out: str) -> None:
    """Tidy what dead exports to ``out`` left: their staging directories are removed, and an old bundle
    moved aside by an overwrite that died before the new one took its place is moved back."""
    parent, name = os.path.split(os.path.abspath(out))
    for kind in ("old", "partial"):  # an old bundle first: it may be put back
        prefix = f".{name}.{kind}-"
        for entry in sorted(os.listdir(parent)):
            pid = entry[len(prefix):]
            if not (entry.startswith(prefix) and pid.isdigit()) or _alive(int(pid)):
                continue
            path = os.path.join(parent, entry)
            if kind == "old" and not os.path.lexists(out):
                os.rename(path, out)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _replaceable(path: str) -> None:
    """Refuse to replace what is not a bundle: only a directory with a manifest, or an empty one."""
    if os.path.isdir(path) and not os.path.islink(path) and (
            os.path.isfile(os.path.join(path, MANIFEST)) or not os.listdir(path)):
        return
    raise FileExistsError(f"{path} exists and is not a qwenvl-edge bundle: not replacing it")


class BundleWriter:
    """``with BundleWriter(out) as w: write files at w.path(name); w.finish(manifest)``."""

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = os.path.abspath(os.fspath(out))
        parent, name = os.path.split(self.out)
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"{parent}: the bundle's parent directory does not exist")
        recover(self.out)
        if os.path.lexists(self.out):
            if not overwrite:
                raise FileExistsError(f"{self.out} already exists (pass overwrite=True / --overwrite to replace it)")
            _replaceable(self.out)
        self.overwrite = overwrite
        self.staging = os.path.join(parent, f".{name}.partial-{os.getpid()}")
        self._done = False

    def __enter__(self) -> "BundleWriter":
        shutil.rmtree(self.staging, ignore_errors=True)
        os.makedirs(self.staging)
        return self

    def path(self, name: str) -> str:
        return os.path.join(self.staging, name)

    def finish(self, manifest: Manifest, progress: Callable[[int], None] | None = None) -> Manifest:
        """Hash every staged file into the manifest's files, write it, move the bundle in place.
        Returns the manifest as written."""
        files = {}
        for name in sorted(os.listdir(self.staging)):
            path = self.path(name)
            files[name] = FileEntry(bytes=os.path.getsize(path), sha256=file_sha256(path, progress))
        manifest = dataclasses.replace(manifest, files=files).sealed()
        with open(self.path(MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest.to_json(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        old = None
        if os.path.lexists(self.out):  # overwrite: move the old bundle aside, then swap
            if not self.overwrite:  # it appeared while we worked: not ours to replace
                raise FileExistsError(f"{self.out} appeared while the export ran; it was left as it is")
            _replaceable(self.out)
            old = self.staging.replace(".partial-", ".old-")
            os.rename(self.out, old)
        os.rename(self.staging, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._done = True
        return manifest

    def __exit__(self, kind, value, traceback) -> None:
        if not self._done:
            shutil.rmtree(self.staging, ignore_errors=True)
