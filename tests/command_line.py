"""Running the real ``qwenvl-edge`` command in a new process, as a shell would (stdin piped, output captured)."""

from __future__ import annotations

import subprocess
import sys

COMMAND = [sys.executable, "-m", "qwenvl_edge.cli"]


def qwenvl_edge(*args: str, stdin: str = "", timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=timeout, **kwargs)
