"""Write a bundle directory atomically (qwenvl_edge.bundle describes the layout).

Files are staged in a hidden sibling directory ``.NAME.partial-PID``; the manifest, with every file's
size and sha256, is written last, and only then is the directory renamed to NAME. An export that fails
removes its staging directory; one that is killed leaves a hidden directory without a manifest, which
no reader takes for a bundle and the next export to the same NAME removes.
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


class BundleWriter:
    """``with BundleWriter(out) as w: write files at w.path(name); w.finish(manifest)``."""

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = os.path.abspath(os.fspath(out))
        parent, name = os.path.split(self.out)
        if os.path.exists(self.out) and not overwrite:
            raise FileExistsError(f"{self.out} already exists (pass overwrite=True / --overwrite to replace it)")
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"{parent}: the bundle's parent directory does not exist")
        self._remove_stale_staging(parent, name)
        self.staging = os.path.join(parent, f".{name}.partial-{os.getpid()}")
        self._done = False

    @staticmethod
    def _remove_stale_staging(parent: str, name: str) -> None:
        prefix = f".{name}.partial-"
        for entry in os.listdir(parent):
            pid = entry[len(prefix):]
            if entry.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)

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
        manifest = dataclasses.replace(manifest, files=files)
        with open(self.path(MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest.to_json(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        old = None
        if os.path.exists(self.out):  # overwrite: move the old bundle aside, then swap
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
