"""One measurement in its own process, so that its peak RSS is its own and one engine's threads and
caches never touch another's:

    python -m qwenvl_edge.bench.child NAME '{"keyword": "arguments"}'

prints one JSON line: the measurement's result plus ``peak_rss_gib``.
"""

from __future__ import annotations

import json
import sys
from typing import Callable

from .rss import peak_rss_gib


def main() -> None:
    from . import ours, peers

    measurements: dict[str, Callable[..., dict]] = {"ours": ours.measure, "cold": ours.cold, "llama.cpp": peers.llama_cpp,
                    "int4_layer": peers.int4_layer, "torch_vision": peers.torch_vision,
                    "mnn_vision": peers.mnn_vision}
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = measurements[name](**kwargs)
    result.setdefault("peak_rss_gib", peak_rss_gib())  # a measurement may take it before work that is not its own
    print(json.dumps(result))


if __name__ == "__main__":
    main()
