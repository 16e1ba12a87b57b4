"""The exporters' progress bars: tqdm on stderr, gone when done, off when not wanted."""

from __future__ import annotations

import sys


def bar(total: float | None, desc: str, enabled: bool, unit: str = "it", **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, file=sys.stderr, **kwargs)
