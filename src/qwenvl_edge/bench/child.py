"""One measurement in its own process, so that its peak RSS is its own and one engine's threads and
caches never touch another's:

    python -m qwenvl_edge.bench.child NAME '{"keyword": "arguments"}'

prints one JSON line: the measurement's result plus ``peak_rss_gib``.
"""

from __future__ import annotations

import json
import sys
from typing import Callable


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


def main() -> None:
    from . import ours, peers

    measurements: dict[str, Callable[..., dict]] = {"ours": ours.measure, "cold": ours.cold, "llama.cpp": peers.llama_cpp,
                    "int4_layer": peers.int4_layer, "torch_vision": peers.torch_vision}
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = measurements[name](**kwargs)
    result["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
