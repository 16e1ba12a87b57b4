"""A bundle: the directory the exporter writes and the runtime opens.

    manifest.json      what everything below is (written last, so a bundle without it is incomplete)
    vision.onnx        the ViT + adapter graph (+ vision.onnx.data when the weights are external)
    decoder.qvw        the decoder weights in the native core's format (mmap-ready)
    qwen.tiktoken      the vocabulary

The manifest records the format version, the model dims, the special-token ids (derived from the
vocabulary file at export), the preprocessing constants, the quantization settings, the generation
defaults, and the size and sha256 of every file. Opening checks presence and sizes (cheap);
``verify`` re-hashes every byte and names every file that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from typing import Callable

from qwenvl_edge import bundle_store
from qwenvl_edge.errors import FormatError
from qwenvl_edge.manifest import Manifest

MANIFEST = "manifest.json"
HASH_CHUNK = 8 << 20


def file_sha256(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file, read in chunks; ``progress(n)`` is called with each chunk's size."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


@dataclasses.dataclass
class Bundle:
    """An opened bundle: its directory and its checked manifest."""

    directory: str
    manifest: Manifest

    @classmethod
    def open(cls, directory: str | os.PathLike, check_files: bool = True) -> "Bundle":
        """Read and check the manifest and (unless ``check_files`` is False, for ``verify`` to report every
        file) that every listed file is there with its recorded size."""
        directory = bundle_store.resolve(directory)
        path = os.path.join(directory, MANIFEST)
        if not os.path.isdir(directory):
            if bundle_store.is_name(directory):
                known = ", ".join(bundle_store.names()) or "none yet"
                raise FormatError(f"{directory}: no such bundle directory, nor a bundle of that name in "
                                  f"{bundle_store.root()} (there: {known})")
            raise FormatError(f"{directory}: not a bundle directory")
        if not os.path.isfile(path):
            partial = " (an interrupted export?)" if os.listdir(directory) else ""
            raise FormatError(f"{directory}: no {MANIFEST}; not a complete bundle{partial}")
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(f"{path}: cannot read the manifest ({e})") from e
        bundle = cls(directory, Manifest.from_json(raw, path))
        for name in bundle.manifest.files:
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise FormatError(f"{path}: file name {name!r} is not a plain name inside the bundle")
        if check_files:
            problem = next(filter(None, map(bundle._file_problem, bundle.manifest.files)), None)
            if problem:
                raise FormatError(problem)
        return bundle

    def _file_problem(self, name: str) -> str | None:
        """What is wrong with a listed file's presence or size, or None."""
        file, entry = os.path.join(self.directory, name), self.manifest.files[name]
        if not os.path.isfile(file):
            return f"{file}: missing from the bundle"
        size = os.path.getsize(file)
        if size != entry.bytes:
            return f"{file}: {size} bytes, the manifest says {entry.bytes} (truncated or replaced?)"
        return None

    def path(self, section: str) -> str:
        """The path of a section's main file: path("decoder"), path("vision"), path("tokenizer")."""
        return os.path.join(self.directory, getattr(self.manifest, section).file)

    def verify(self, progress: Callable[[int], None] | None = None) -> None:
        """Re-hash every file and the manifest itself; a FormatError naming every one that is missing,
        has another size or other bytes."""
        path = os.path.join(self.directory, MANIFEST)
        if self.manifest.digest is None:
            raise FormatError(f"{path}: no digest of its own (written before qwenvl-edge covered the manifest); "
                              f"re-export the bundle to verify it")
        problems = []
        if self.manifest.content_digest() != self.manifest.digest:
            problems.append(f"{path}: its content does not match its digest (modified after the export?)")
        for name, entry in self.manifest.files.items():
            file, problem = os.path.join(self.directory, name), self._file_problem(name)
            if problem is None and file_sha256(file, progress) != entry.sha256:
                problem = f"{file}: sha256 differs from the manifest (corrupted or modified)"
            if problem:
                problems.append(problem)
        if len(problems) > 1:
            raise FormatError(f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems))
        if problems:
            raise FormatError(problems[0])

    def read_ahead(self) -> threading.Thread | None:
        """Ask the OS, from a background thread, to start reading the weight files into the page cache,
        the vision model's first (it runs first): after a reboot the first question otherwise waits for
        page faults to pull 8 GB from disk in small pieces, while here the disk streams during the vision
        pass. Advice only (no memory of this process is used); None where the OS has no such call."""
        if not hasattr(os, "posix_fadvise"):
            return None
        vision = self.manifest.vision
        names = [vision.file, *([vision.data_file] if vision.data_file else []), self.manifest.decoder.file]
        thread = threading.Thread(target=_advise_will_need, args=([os.path.join(self.directory, n) for n in names],),
                                  name="qwenvl-read-ahead", daemon=True)
        thread.start()
        return thread

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.manifest.files.values())


def _advise_will_need(paths: list[str]) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
