"""Interleaved timing of several variants of one computation, and robust summaries.

Example:

    rounds = interleaved([original, reordered], pairs=30, calls_per_sample=4)
    ratios = [b / a for a, b in rounds]
    q1, median, q3 = quartiles(ratios)
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def calls_per_sample(call: Callable[[], Any], min_seconds: float) -> int:
    """How many calls make one timed sample last at least `min_seconds` (call is warm)."""
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    return max(1, math.ceil(min_seconds / max(once, 1e-9)))


def sample(call: Callable[[], Any], calls: int) -> float:
    """Seconds per call, averaged over `calls` back-to-back calls, with the GC off."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def interleaved(calls: Sequence[Callable[[], Any]], *, pairs: int,
                calls_per_sample: int) -> list[list[float]]:
    """`pairs` rounds; each round times every call once, starting at a rotating position.

    Round r runs calls[r % k], calls[(r + 1) % k], ..., so no variant always runs
    first (after a collection) or last. Returns one list per round, indexed like
    `calls` (seconds per call).
    """
    k = len(calls)
    rounds = []
    for r in range(pairs):
        gc.collect()
        times = [0.0] * k
        for j in range(k):
            index = (r + j) % k
            times[index] = sample(calls[index], calls_per_sample)
        rounds.append(times)
    return rounds


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3), inclusive method; a single value is its own quartiles."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def limit_ratio(share: float, fraction_removed: float) -> float:
    """The best ratio the rewrite can reach: the activations' share of run time
    shrinks by the fraction of activation elements it removes."""
    return 1.0 - share * fraction_removed
