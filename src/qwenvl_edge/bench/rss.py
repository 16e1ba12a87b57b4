"""The peak resident memory of this process, the figure every engine's run reports."""

from __future__ import annotations

import sys


def peak_rss_gib() -> float:
    """VmHWM of this process (not ru_maxrss, which Linux carries over from the parent across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    scale = 2**30 if sys.platform == "darwin" else 2**20  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
