"""Bundles kept by name: ``qwenvl-edge export Qwen/Qwen-VL-Chat-Int4`` writes to
$XDG_DATA_HOME/qwenvl-edge/bundles/qwen-vl-chat-int4 (``QWENVL_EDGE_BUNDLES`` overrides the folder), and
``qwenvl-edge ask qwen-vl-chat-int4 ...`` finds it there. A path always wins over a name."""

from __future__ import annotations

import os

from . import user_data


def root() -> str:
    return os.environ.get("QWENVL_EDGE_BUNDLES") or user_data.directory("bundles")


def name_for(repo_id: str) -> str:
    """The bundle name of a Hub repository: its name, lower case (``Qwen/Qwen-VL-Chat`` -> ``qwen-vl-chat``)."""
    return repo_id.rsplit("/", 1)[-1].lower()


def is_name(text: str) -> bool:
    """A bare name (no folder part) that is not a path here."""
    return bool(text) and os.sep not in text and "/" not in text and text not in (".", "..") and not os.path.exists(text)


def resolve(bundle: str | os.PathLike) -> str:
    """The directory of ``bundle``: the path itself, or the stored bundle of that name."""
    text = os.fspath(bundle)
    if is_name(text) and os.path.isdir(os.path.join(root(), text)):
        return os.path.join(root(), text)
    return text


def names() -> list[str]:
    """The stored bundles' names (folders holding a manifest), sorted."""
    from .bundle import MANIFEST

    try:
        entries = sorted(os.listdir(root()))
    except FileNotFoundError:
        return []
    return [n for n in entries if not n.startswith(".") and os.path.isfile(os.path.join(root(), n, MANIFEST))]
