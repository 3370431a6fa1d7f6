"""Shared by the benchmark scripts: best-of-N wall time of a jitted call, compilation excluded."""
from __future__ import annotations

import time

import jax


def best_time(function, *args, repeat=3):
    """``(seconds, result)``: one warm-up call, then the fastest of ``repeat`` timed calls."""
    out = function(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = function(*args)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    return min(times), out
