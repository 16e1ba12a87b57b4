"""Where qwenvl-edge keeps what it writes for a user: $XDG_DATA_HOME/qwenvl-edge, by default
~/.local/share/qwenvl-edge (the chat history, the bench results)."""

from __future__ import annotations

import os


def directory(*parts: str) -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "qwenvl-edge", *parts)
