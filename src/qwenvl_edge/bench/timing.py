"""Samples of a timed call, and how a list of samples is summarised (median and spread)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def spread(samples: list[float]) -> float:
    """Half the range: the +- a reader can put after the median."""
    return (max(samples) - min(samples)) / 2


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the nearest samples."""
    return float(np.percentile(samples, q))
