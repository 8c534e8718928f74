"""Interleaved timing of several variants of one computation, and robust summaries.

Example:

    pin_to_cpu("last")
    rounds = interleaved([original, reordered], pairs=30, calls_per_sample=4, repeats=5)
    ratios = [b / a for a, b in rounds]
    q1, median, q3 = quartiles(ratios)
"""

from __future__ import annotations

import gc
import math
import os
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


def pin_to_cpu(which: str) -> int | None:
    """Pins this process (and the children it starts) to one CPU; returns it.

    `which` is "last" (the highest CPU this process may use), "none" (no pinning)
    or a CPU number. One CPU per process keeps the scheduler from moving the timed
    thread between cores (cold caches) and leaves the other cores to the rest of
    the machine.
    """
    if which == "none":
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if which == "last":
        cpu = allowed[-1]
    elif which.isdigit():
        cpu = int(which)
    else:
        raise ValueError(f"expected 'last', 'none' or a CPU number, got {which!r}")
    if cpu not in allowed:
        raise ValueError(f"CPU {cpu} is not available to this process (allowed: {allowed})")
    os.sched_setaffinity(0, {cpu})
    return cpu


def sample(call: Callable[[], Any], calls: int, repeats: int = 1) -> float:
    """Seconds per call: the best of `repeats` timings of `calls` back-to-back calls.

    The GC is off while timing. The minimum, not the mean, because interference
    (another process, an interrupt, a page fault) only ever adds time: the best
    of a few short timings is the least disturbed estimate of the call's cost.
    """
    gc.disable()
    try:
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            best = min(best, (time.perf_counter() - start) / calls)
        return best
    finally:
        gc.enable()


def interleaved(calls: Sequence[Callable[[], Any]], *, pairs: int,
                calls_per_sample: int, repeats: int = 1) -> list[list[float]]:
    """`pairs` rounds; each round times every call once, starting at a rotating position.

    Round r runs calls[r % k], calls[(r + 1) % k], ..., so no variant always runs
    first (after a collection) or last. Returns one list per round, indexed like
    `calls` (seconds per call, each the best of `repeats` timings; see `sample`).
    """
    k = len(calls)
    rounds = []
    for r in range(pairs):
        gc.collect()
        times = [0.0] * k
        for j in range(k):
            index = (r + j) % k
            times[index] = sample(calls[index], calls_per_sample, repeats)
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
