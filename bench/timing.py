"""The benches' one timer: the median of repeated calls, since on a shared machine a call now and then
waits ~100x longer for a core than the others."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], None], sync: Callable[[], None], min_s: float) -> float:
    """Median seconds per call over at least ``min_s`` seconds and 5 calls, after 3 warm-up calls;
    ``sync`` waits for the device (torch.cuda.synchronize) so a call's time is its work's."""
    for _ in range(3):
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_s or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
