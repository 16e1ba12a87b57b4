"""Running the real ``qwenvl-edge`` command in a new process, as a shell would (stdin piped, output captured)."""

from __future__ import annotations

import signal
import subprocess
import sys

COMMAND = [sys.executable, "-m", "qwenvl_edge.cli"]


def qwenvl_edge(*args: str, stdin: str = "", timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=timeout, **kwargs)


def start(*args: str, **kwargs) -> subprocess.Popen:
    """The command started with its output piped, Ctrl-C (SIGINT) handled as at a terminal even when the
    tests run in a background job, where the shell starts every process with SIGINT ignored."""
    return subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)
